"""WooCommerce (a store, either side of a marketplace channel): `type = "woocommerce"`."""

from connectors.woocommerce.connector import WooCommerceConnector as CONNECTOR

__all__ = ["CONNECTOR"]
