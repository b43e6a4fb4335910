"""Names used across modules, in one place (as arq keeps its Redis keys in one constants.py):
outbound message kinds and the connector operations they call, destinations, event types.

Stored in the outbox and in logs, so a name here never changes once released.
"""

from __future__ import annotations

from typing import Literal, get_args

# Connector operations (DESIGN.md "The connector contract"). An outbox message's kind is the
# operation it calls, or EVENT for a subscriber delivery.
PUSH_ORDER = "push_order"
CANCEL_ORDER = "cancel_order"
PUSH_FULFILLMENT = "push_fulfillment"
CANCEL_FULFILLMENT = "cancel_fulfillment"
PUSH_INVENTORY = "push_inventory"
# Sent to an order's origin once its FO exists: the partner's "taken" mark (a wholesale portal's
# processed), so the next poll does not fetch it again.
ACKNOWLEDGE_ORDER = "acknowledge_order"
# Writes to a connector's partner records: "<write>:<kind>", e.g. "update:company".
RecordWrite = Literal["create", "update", "archive", "delete", "hold"]
RECORD_WRITES: tuple[str, ...] = get_args(RecordWrite)
# Reading a kind of record at all: a connector may declare "list:<kind>" unsupported (a kind
# the partner has but this integration never fetches), answered 501 rather than 404.
LIST = "list"
EVENT = "event"


def record_operation(write: str, kind: str) -> str:
    return f"{write}:{kind}"


# Destinations of outbox messages.
CONNECTOR, SUBSCRIBER = "connector", "subscriber"


def connector_destination(name: str) -> str:
    return f"{CONNECTOR}:{name}"


def subscriber_destination(name: str) -> str:
    return f"{SUBSCRIBER}:{name}"


def event_message_key(event_id: str, subscriber: str) -> str:
    """An event's message to one subscriber: once per event and subscriber."""
    return f"{event_id}:{subscriber}"


def event_id_of(message_key: str) -> str:
    """The event a message delivers, read from its key (event ids hold no colon): the
    dispatcher signs with it and so needs not parse the payload."""
    return message_key.partition(":")[0]


def split_destination(destination: str) -> tuple[str, str]:
    """("connector", "name") or ("subscriber", "name")."""
    kind, _, name = destination.partition(":")
    return kind, name


# Events for subscribers (DESIGN.md "Outbound events").
FO_CREATED = "fulfillment_order.created"
FO_STATUS_CHANGED = "fulfillment_order.status_changed"
FO_CANCELLED = "fulfillment_order.cancelled"
FO_SOURCE_CHANGED = "fulfillment_order.source_changed"
SHIPMENT_RECORDED = "shipment.recorded"
SHIPMENT_UNMATCHED = "shipment.unmatched"
ORDER_PUSHED = "order.pushed"
ORDER_PUSH_FAILED = "order.push_failed"
INVOICE_REQUESTED = "invoice.requested"
PARTNER_ORDER_UNCLAIMED = "partner_order.unclaimed"
PARTNER_ORDER_HELD = "partner_order.held"
SHIPMENT_REJECTED = "shipment.rejected"
INBOUND_SHIPMENT_SYNCED = "inbound_shipment.synced"
TRANSFER_ORDER_CREATED = "transfer_order.created"
TRANSFER_ORDER_SHIPPED = "transfer_order.shipped"
PURCHASE_ORDER_RECEIVED = "purchase_order.received"
PURCHASE_ORDER_CLOSED = "purchase_order.closed"
INVENTORY_DISCREPANCY = "inventory.discrepancy"
EVENT_TYPES = (FO_CREATED, FO_STATUS_CHANGED, FO_CANCELLED, FO_SOURCE_CHANGED,
               SHIPMENT_RECORDED, SHIPMENT_UNMATCHED, ORDER_PUSHED, ORDER_PUSH_FAILED,
               INVOICE_REQUESTED, PARTNER_ORDER_UNCLAIMED, PARTNER_ORDER_HELD,
               SHIPMENT_REJECTED, INBOUND_SHIPMENT_SYNCED, TRANSFER_ORDER_CREATED,
               TRANSFER_ORDER_SHIPPED, PURCHASE_ORDER_RECEIVED, PURCHASE_ORDER_CLOSED,
               INVENTORY_DISCREPANCY)

InvoiceTiming = Literal["on_order_created", "on_shipment_created"]
INVOICE_TIMINGS: tuple[str, ...] = get_args(InvoiceTiming)
