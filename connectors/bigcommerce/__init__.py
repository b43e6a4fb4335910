"""BigCommerce (a store, either side of a marketplace channel): `type = "bigcommerce"`."""

from connectors.bigcommerce.connector import BigCommerceConnector as CONNECTOR

__all__ = ["CONNECTOR"]
