"""The `data` of each event subscribers receive, declared once: gateway/outbound.py builds
each event with these, and the OpenAPI document's `webhooks` section is made from them."""

from __future__ import annotations

from typing import Any

from typing_extensions import TypedDict  # pydantic reads these on 3.11

from gateway.domain.records import FoStatus, ShipmentStatus
from gateway.names import (
    FO_CANCELLED,
    FO_CREATED,
    FO_SOURCE_CHANGED,
    FO_STATUS_CHANGED,
    INBOUND_SHIPMENT_SYNCED,
    INVENTORY_DISCREPANCY,
    INVOICE_REQUESTED,
    ORDER_PUSH_FAILED,
    ORDER_PUSHED,
    PARTNER_ORDER_HELD,
    PARTNER_ORDER_UNCLAIMED,
    PURCHASE_ORDER_CLOSED,
    PURCHASE_ORDER_RECEIVED,
    SHIPMENT_RECORDED,
    SHIPMENT_REJECTED,
    SHIPMENT_UNMATCHED,
    TRANSFER_ORDER_CREATED,
    TRANSFER_ORDER_SHIPPED,
)


class RequestedLine(TypedDict):
    line_id: str
    sku: str
    requested: int


class ProgressLine(TypedDict):
    line_id: str
    sku: str
    requested: int
    fulfilled: int


class QuantityLine(TypedDict):
    line_id: str
    sku: str
    quantity: int


class ShippedLine(TypedDict):
    sku: str
    quantity: int


class FulfillmentOrderData(TypedDict):
    fulfillment_order_id: str
    channel: str | None
    order_number: str | None
    status: FoStatus
    lines: list[RequestedLine]


class StatusChangedData(TypedDict):
    fulfillment_order_id: str
    old_status: FoStatus
    new_status: FoStatus
    lines: list[ProgressLine]  # each line after the change


class ShipmentData(TypedDict):
    shipment_id: str
    source: str
    external_id: str
    status: ShipmentStatus
    lines: list[ShippedLine]
    carrier: str | None
    service: str | None
    tracking_numbers: list[str]
    tracking_url: str | None
    shipped_at: str | None
    fulfillment_order_ids: list[str]


class UnmatchedData(ShipmentData):
    reason: str | None
    candidates: list[str]  # FO ids a person may match it to


class RejectedData(ShipmentData):
    connector: str  # the origin the fulfilment was not pushed to
    reason: str


class InboundItemData(TypedDict):
    sku: str
    shipped: int
    received: int
    case_quantity: int


class InboundSyncedData(TypedDict):
    connector: str
    inbound_shipment_id: str
    name: str | None
    destination: str | None
    status: str | None  # the partner's
    stage: str | None  # the gateway's: planned, open, closed, cancelled
    previous_status: str | None
    items: list[InboundItemData]


class TransferLineData(TypedDict):
    sku: str
    quantity: int  # on the sales order and the purchase order
    received: int  # on the purchase order so far


class TransferOrderData(TypedDict):
    transfer_order_id: str
    connector: str
    inbound_shipment_id: str
    fulfillment_order_id: str  # the sales order
    purchase_order_id: str
    source_location: str
    destination_location: str
    status: str
    purchase_order_status: str
    lines: list[TransferLineData]


class TransferShippedData(TransferOrderData):
    carrier: str | None
    tracking_numbers: list[str]
    shipped_at: str


class PurchaseOrderReceivedData(TransferOrderData):
    units: list[ShippedLine]  # received by this receipt, per SKU


class PurchaseOrderClosedData(TransferOrderData):
    shortfall: list[ShippedLine]  # units shipped and never received, per SKU


class DiscrepancyData(TypedDict):
    kind: str  # decrease, over_receipt, unplanned_sku, shortfall
    connector: str
    inbound_shipment_id: str
    transfer_order_id: str | None  # None: the shipment is not reconciled yet
    sku: str
    quantity: int  # the units in question
    planned: int  # shipped, per the plan
    received_before: int
    received_after: int


class OrderPushedData(TypedDict):
    fulfillment_order_id: str
    connector: str
    order_number: str | None
    partner_order_id: str | None


class OrderPushFailedData(TypedDict):
    fulfillment_order_id: str
    connector: str
    order_number: str | None
    error: str
    attempts: int


class InvoiceData(TypedDict):
    fulfillment_order_id: str
    channel: str
    order_number: str | None
    shipment_id: str | None  # null: at FO creation; else the shipment being invoiced
    lines: list[QuantityLine]


class SourceChangedData(TypedDict):
    fulfillment_order_id: str
    connector: str
    partner_order_id: str
    changes: dict[str, Any]  # per changed field: {before, after}


class UnclaimedData(TypedDict):
    connector: str
    partner_order_id: str
    order_number: str | None


class HeldData(TypedDict):
    connector: str
    partner_order_id: str
    order_number: str | None
    reason: str  # what the connector could not map, named


EVENT_DATA: dict[str, tuple[str, type]] = {
    FO_CREATED: ("An FO was created", FulfillmentOrderData),
    FO_STATUS_CHANGED: ("Exactly one per status change, with the per-line quantities after"
                        " it", StatusChangedData),
    FO_CANCELLED: ("An FO was cancelled", FulfillmentOrderData),
    SHIPMENT_RECORDED: ("A shipment (or a new version of one) was stored", ShipmentData),
    SHIPMENT_UNMATCHED: ("A shipment no rule could match", UnmatchedData),
    ORDER_PUSHED: ("An FO was placed with its OMS/3PL", OrderPushedData),
    ORDER_PUSH_FAILED: ("Placing an FO gave up; it is a dead letter", OrderPushFailedData),
    INVOICE_REQUESTED: ("Raise an invoice: at FO creation, or once per shipment allocated to"
                        " the FO (with that shipment's lines)", InvoiceData),
    FO_SOURCE_CHANGED: ("The partner order an FO came from changed its lines or address; the"
                        " FO stays as it was (cancel and re-create it if the change must"
                        " ship)", SourceChangedData),
    PARTNER_ORDER_UNCLAIMED: ("A partner order arrived for a connector no channel takes"
                              " orders from; it is kept and listed, not dropped",
                              UnclaimedData),
    PARTNER_ORDER_HELD: ("A partner order the connector could not turn into FO lines (a size"
                         " with no SKU, say): kept and listed as held, no FO made until a"
                         " later version can be", HeldData),
    SHIPMENT_REJECTED: ("A shipment's fulfilment was not pushed to the FO's origin (one item"
                        " with several tracking numbers, say): flagged on the FO's link for a"
                        " person", RejectedData),
    INBOUND_SHIPMENT_SYNCED: ("An inbound shipment (stock sent to a fulfilment network) was"
                              " read with a change: its status, or its items' shipped or"
                              " received units", InboundSyncedData),
    TRANSFER_ORDER_CREATED: ("An inbound shipment was reconciled into a transfer order: a"
                             " sales order (an FO) and a purchase order with its lines",
                             TransferOrderData),
    TRANSFER_ORDER_SHIPPED: ("A transfer order's goods left its source: the sales order"
                             " shipped, the units moved from on hand to in transit",
                             TransferShippedData),
    PURCHASE_ORDER_RECEIVED: ("Units of a transfer order were received at the destination"
                              " (moved from in transit to on hand there)",
                              PurchaseOrderReceivedData),
    PURCHASE_ORDER_CLOSED: ("The destination closed the inbound shipment: the purchase order"
                            " is complete, with any shortfall", PurchaseOrderClosedData),
    INVENTORY_DISCREPANCY: ("What a fulfilment network reported and the gateway did not apply"
                            " (a received count that went down, units above those shipped, a"
                            " SKU not planned) or a shortfall at closing: for a person",
                            DiscrepancyData),
}
