"""The fulfillment gateway: one asyncio process that keeps fulfillment status true across partners."""

__version__ = "0.1.0"
