"""ShipStation v1: Basic auth, thin SHIP_NOTIFY webhooks, polled shipments and fulfillments."""

from connectors.shipstation.connector import ShipStationConnector

CONNECTOR = ShipStationConnector

__all__ = ["CONNECTOR", "ShipStationConnector"]
