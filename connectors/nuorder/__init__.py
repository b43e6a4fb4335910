"""NuOrder (B2B wholesale): `type = "nuorder"`. See connector.py."""

from connectors.nuorder.connector import NuOrderConnector as CONNECTOR

__all__ = ["CONNECTOR"]
