"""Amazon Selling Partner API, FBA inbound shipments: `type = "amazon_sp"`. See connector.py."""

from connectors.amazon_sp.connector import AmazonSpConnector as CONNECTOR

__all__ = ["CONNECTOR"]
