"""Read models: what the storage's reads return, typed, the same from every backend.

Plain frozen data, named as the HTTP API names them, so the API serializes them as they are
(orjson writes a dataclass by its fields); storage never builds a response shape itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gateway.domain.records import FoStatus, OrderRef, PartnerLink, ShipmentStatus


@dataclass(frozen=True)
class LineProgress:
    line_id: str
    sku: str
    requested: int
    fulfilled: int


@dataclass(frozen=True)
class AllocationView:
    fo_id: str
    line_id: str
    sku: str
    quantity: int


@dataclass(frozen=True)
class ShipmentView:
    id: str
    source: str
    external_id: str
    order_refs: Sequence[Mapping[str, str]]
    lines: Sequence[Mapping[str, Any]]
    status: ShipmentStatus
    carrier: str | None
    service: str | None
    tracking_numbers: Sequence[str]
    tracking_url: str | None
    shipped_at: str | None
    partner_updated_at: str
    recorded_at: str
    updated_at: str
    match_state: Literal["matched", "unmatched"]
    match_rule: str | None
    unmatched_reason: str | None
    candidates: Sequence[str]
    fulfillment_order_ids: Sequence[str]
    allocations: Sequence[AllocationView]
    overshipped: Mapping[str, int]


@dataclass(frozen=True)
class OutboundView:
    """A message to a partner about an FO: a push, a cancel, a fulfilment update."""

    id: str  # outbox-N
    destination: str
    kind: str
    status: Literal["pending", "sent", "cancelled", "dead"]
    not_before: str
    attempts: int
    last_error: str | None
    result: Mapping[str, Any] | None
    updated_at: str


@dataclass(frozen=True)
class TimelineEntry:
    at: str
    kind: str
    from_status: FoStatus | None
    to_status: FoStatus | None
    detail: Mapping[str, Any]


@dataclass(frozen=True)
class FulfillmentOrderSummary:
    id: str
    channel: str | None
    order_number: str | None
    status: FoStatus
    ship_to: Mapping[str, Any]
    custom_fields: Mapping[str, Any]
    created_at: str
    updated_at: str
    lines: Sequence[LineProgress]


@dataclass(frozen=True)
class FulfillmentOrderView(FulfillmentOrderSummary):
    external_refs: Sequence[OrderRef]
    flow: Literal["api", "invoice_first", "partner"]
    invoice_id: str | None
    outbound: Sequence[OutboundView]
    shipments: Sequence[ShipmentView]
    timeline: Sequence[TimelineEntry]
    links: Sequence[PartnerLink]


@dataclass(frozen=True)
class DeadLetter:
    """An inbox event (inbox-N) or an outbound message (outbox-N) that gave up."""

    id: str
    source: Literal["inbox", "outbox"]
    connector: str | None
    destination: str | None
    kind: str
    delivery_key: str | None
    fulfillment_order_id: str | None
    received_at: str
    attempts: int
    error: str | None
    failed_at: str | None


@dataclass(frozen=True)
class InboundItemView:
    sku: str
    shipped: int
    received: int
    case_quantity: int


@dataclass(frozen=True)
class StatusSeen:
    status: str
    at: str  # when the gateway first saw it


@dataclass(frozen=True)
class InboundShipmentView:
    """An inbound shipment as the gateway keeps it: its header as last read, every status it
    was seen in, its items as last read."""

    connector: str
    id: str
    name: str | None
    destination: str | None
    status: str | None
    status_history: Sequence[StatusSeen]
    items: Sequence[InboundItemView]
    created_at: str
    updated_at: str
    header_seen_at: str | None = None
    items_seen_at: str | None = None
    stage: str | None = None  # planned, open, closed, cancelled: the gateway's word
    closed_seen_at: str | None = None  # when a read first showed it closed


# stock: transfer orders, receipts from a fulfilment network, the inventory ledger

ReceiptKind = Literal["receipt", "decrease", "over_receipt", "unplanned_sku", "shortfall"]
# held: a receipt on a shipment not yet reconciled; applied: in the ledger; reported: a
# discrepancy, recorded and reported, never applied
ReceiptState = Literal["held", "applied", "reported"]
TransferStatus = Literal["reconciled", "shipped", "received", "closed"]
PurchaseOrderStatus = Literal["open", "partially_received", "received", "closed"]


@dataclass(frozen=True)
class TransferLine:
    sku: str
    quantity: int  # on the sales order and on the purchase order
    received: int = 0  # received on the purchase order so far


@dataclass(frozen=True)
class TransferOrder:
    """An inbound shipment reconciled: a sales order (the FO `fulfillment_order_id`) for the
    units leaving `source_location`, a purchase order for them arriving at
    `destination_location`."""

    id: str
    connector: str
    inbound_shipment_id: str
    fulfillment_order_id: str
    purchase_order_id: str
    source_location: str
    destination_location: str
    status: TransferStatus
    purchase_order_status: PurchaseOrderStatus
    lines: Sequence[TransferLine]
    created_at: str
    updated_at: str
    carrier: str | None = None
    tracking_numbers: Sequence[str] = ()
    shipped_at: str | None = None
    closed_at: str | None = None


@dataclass(frozen=True)
class InboundReceipt:
    """What one read of an inbound shipment's items changed for one SKU: units received
    (a receipt), or a discrepancy (a decrease, units above those shipped, a SKU not planned,
    units short at closing) that is reported and never applied."""

    id: str
    connector: str
    inbound_shipment_id: str
    sku: str
    kind: ReceiptKind
    quantity: int
    received_before: int
    received_after: int
    state: ReceiptState
    observed_at: str
    recorded_at: str
    transfer_order_id: str | None = None
    applied_at: str | None = None


@dataclass(frozen=True)
class Movement:
    """One change in the inventory ledger at one location and SKU: units on hand and in
    transit (to that location) added, or taken when negative."""

    location: str
    sku: str
    on_hand: int
    in_transit: int
    reason: str  # transfer_shipped, transfer_received
    reference: str  # the transfer order, or the receipt
    at: str
    id: int | None = None


@dataclass(frozen=True)
class StockLevel:
    location: str
    sku: str
    on_hand: int
    in_transit: int
    updated_at: str
