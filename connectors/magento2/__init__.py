"""Magento 2 / Adobe Commerce (a store, either side of a marketplace channel):
`type = "magento2"`."""

from connectors.magento2.connector import Magento2Connector as CONNECTOR

__all__ = ["CONNECTOR"]
