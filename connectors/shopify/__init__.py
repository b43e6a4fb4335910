"""Shopify (a store, either side of a marketplace channel): `type = "shopify"`."""

from connectors.shopify.connector import ShopifyConnector as CONNECTOR

__all__ = ["CONNECTOR"]
