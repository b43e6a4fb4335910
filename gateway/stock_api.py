"""The HTTP API's stock routes: inbound shipments (stock sent to a fulfilment network), the
transfer orders they are reconciled into, the receipts read from the network, and the
inventory ledger (levels and movements per location and SKU)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from aiohttp import web
from pydantic import Field, StringConstraints

from gateway.errors import NotFound
from gateway.openapi import PageOf
from gateway.routes import Inputs, Route, gateway_of, json_response, page_response
from gateway.shapes import (
    Body,
    Id,
    InboundShipmentOneQuery,
    InboundShipmentQuery,
    Name,
    Paging,
    Sku,
    Text,
)
from storage.models import (
    InboundReceipt,
    InboundShipmentView,
    LineProgress,
    Movement,
    ReceiptState,
    StockLevel,
    TransferOrder,
    TransferStatus,
)

Location = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^\S+$")]


# requests

class ReconcileRequest(Body):
    source_location: Location = Field(description="the warehouse the units leave from (the"
                                                  " inventory ledger's location)")
    connector: Name | None = Field(None, description="whose shipment, when two connectors"
                                                     " have one of this id")


class ShipRequest(Body):
    carrier: Text | None = None
    tracking_numbers: Annotated[list[Text], Field(max_length=100)] = []


class ReceiptQuery(Paging):
    connector: Name | None = None
    state: ReceiptState | None = Field(None, description="held: on a shipment not reconciled"
                                                         " yet; applied; reported: a"
                                                         " discrepancy, never applied")


class TransferOrderQuery(Paging):
    connector: Name | None = None
    status: TransferStatus | None = Field(None, description="reconciled (not shipped yet),"
                                                            " shipped, received, closed")


class LedgerQuery(Paging):
    location: Location | None = None
    sku: Sku | None = None


# answers

@dataclass(frozen=True)
class InboundShipmentDetail(InboundShipmentView):
    """An inbound shipment with its transfer order (if reconciled) and every receipt and
    discrepancy read from it."""

    transfer_order_id: str | None = None
    receipts: Sequence[InboundReceipt] = ()


@dataclass(frozen=True)
class SalesOrderView:
    fulfillment_order_id: str
    status: str
    lines: Sequence[LineProgress]


@dataclass(frozen=True)
class PurchaseLine:
    sku: str
    ordered: int
    received: int


@dataclass(frozen=True)
class PurchaseOrderView:
    id: str
    location: str
    status: Literal["open", "partially_received", "received", "closed"]
    lines: Sequence[PurchaseLine]
    closed_at: str | None


@dataclass(frozen=True)
class ShippedView:
    at: str
    carrier: str | None
    tracking_numbers: Sequence[str]


@dataclass(frozen=True)
class TransferOrderView:
    id: str
    connector: str
    inbound_shipment_id: str
    status: TransferStatus
    source_location: str
    destination_location: str
    sales_order: SalesOrderView
    purchase_order: PurchaseOrderView
    shipped: ShippedView | None
    receipts: Sequence[InboundReceipt]
    created_at: str
    updated_at: str


async def _transfer_view(request: web.Request, order: TransferOrder) -> TransferOrderView:
    storage = gateway_of(request).storage
    fo = await storage.fulfillment_order_view(order.fulfillment_order_id)
    return TransferOrderView(
        id=order.id, connector=order.connector, inbound_shipment_id=order.inbound_shipment_id,
        status=order.status, source_location=order.source_location,
        destination_location=order.destination_location,
        sales_order=SalesOrderView(order.fulfillment_order_id,
                                   fo.status if fo else "unknown", fo.lines if fo else []),
        purchase_order=PurchaseOrderView(
            order.purchase_order_id, order.destination_location, order.purchase_order_status,
            [PurchaseLine(ln.sku, ln.quantity, ln.received) for ln in order.lines],
            order.closed_at),
        shipped=ShippedView(order.shipped_at, order.carrier, order.tracking_numbers)
        if order.shipped_at else None,
        receipts=await storage.inbound_receipts(order.connector, order.inbound_shipment_id),
        created_at=order.created_at, updated_at=order.updated_at)


# handlers

async def list_inbound_shipments(request: web.Request, inputs: Inputs) -> web.Response:
    q: InboundShipmentQuery = inputs.query
    page = await gateway_of(request).storage.list_inbound_shipments(
        q.connector, [q.status] if q.status else [], q.updated_since, q.cursor, q.limit)
    return page_response(page.items, page.next_cursor)


async def get_inbound_shipment(request: web.Request, inputs: Inputs) -> web.Response:
    q: InboundShipmentOneQuery = inputs.query
    storage = gateway_of(request).storage
    shipment_id = request.match_info["id"]
    view = await storage.inbound_shipment(shipment_id, q.connector)
    if view is None:
        raise NotFound(f"inbound shipment {shipment_id} does not exist")
    order = await storage.transfer_order_for(view.connector, view.id)
    return json_response(InboundShipmentDetail(
        **vars(view), transfer_order_id=order.id if order else None,
        receipts=await storage.inbound_receipts(view.connector, view.id)))


async def reconcile_inbound_shipment(request: web.Request, inputs: Inputs) -> web.Response:
    body: ReconcileRequest = inputs.body
    gw = gateway_of(request)
    shipment_id = request.match_info["id"]
    view = await gw.storage.inbound_shipment(shipment_id, body.connector)
    if view is None:
        raise NotFound(f"inbound shipment {shipment_id} does not exist")
    connector = gw.connectors.get(view.connector)
    destination = connector.inventory_location() if connector else view.connector
    order, created = await gw.stock.reconcile(view.connector, view.id, body.source_location,
                                              destination)
    return json_response(await _transfer_view(request, order), 201 if created else 200)


async def get_transfer_order(request: web.Request, inputs: Inputs) -> web.Response:
    order = await gateway_of(request).storage.transfer_order(request.match_info["id"])
    if order is None:
        raise NotFound(f"transfer order {request.match_info['id']} does not exist")
    return json_response(await _transfer_view(request, order))


async def list_transfer_orders(request: web.Request, inputs: Inputs) -> web.Response:
    q: TransferOrderQuery = inputs.query
    page = await gateway_of(request).storage.list_transfer_orders(
        q.connector, [q.status] if q.status else [], q.cursor, q.limit)
    return page_response([await _transfer_view(request, order) for order in page.items],
                         page.next_cursor)


async def ship_transfer_order(request: web.Request, inputs: Inputs) -> web.Response:
    body: ShipRequest = inputs.body or ShipRequest()
    order = await gateway_of(request).stock.ship(request.match_info["id"], body.carrier,
                                                 body.tracking_numbers)
    return json_response(await _transfer_view(request, order))


async def list_inbound_receipts(request: web.Request, inputs: Inputs) -> web.Response:
    q: ReceiptQuery = inputs.query
    page = await gateway_of(request).storage.list_inbound_receipts(
        q.connector, [q.state] if q.state else [], q.cursor, q.limit)
    return page_response(page.items, page.next_cursor)


async def list_inventory(request: web.Request, inputs: Inputs) -> web.Response:
    q: LedgerQuery = inputs.query
    page = await gateway_of(request).storage.inventory_levels(q.location, q.sku, q.cursor,
                                                             q.limit)
    return page_response(page.items, page.next_cursor)


async def list_movements(request: web.Request, inputs: Inputs) -> web.Response:
    q: LedgerQuery = inputs.query
    page = await gateway_of(request).storage.inventory_movements(q.location, q.sku, q.cursor,
                                                                q.limit)
    return page_response(page.items, page.next_cursor)


ID = {"id": Id}
STOCK_ROUTES: list[Route] = [
    Route("GET", "/api/v1/inventory", list_inventory, "listInventory",
          "The inventory ledger's levels: on hand and in transit (to it) per location and"
          " SKU", {200: (PageOf(StockLevel), "A page, by location and SKU")},
          query=LedgerQuery),
    Route("GET", "/api/v1/inventory/movements", list_movements, "listInventoryMovements",
          "Every change to the inventory ledger, oldest first: units on hand and in transit"
          " added or taken, why, and what caused it", {200: (PageOf(Movement), "A page")},
          query=LedgerQuery),
    Route("GET", "/api/v1/inbound-shipments", list_inbound_shipments, "listInboundShipments",
          "Stock sent to fulfilment networks (inbound shipments): status with its history,"
          " per SKU shipped and received; oldest change first",
          {200: (PageOf(InboundShipmentView), "A page")}, query=InboundShipmentQuery),
    Route("GET", "/api/v1/inbound-shipments/{id}", get_inbound_shipment, "getInboundShipment",
          "One inbound shipment, by the partner's id, with its transfer order and receipts",
          {200: (InboundShipmentDetail, "The shipment")}, query=InboundShipmentOneQuery,
          path_params=ID),
    Route("POST", "/api/v1/inbound-shipments/{id}/reconcile", reconcile_inbound_shipment,
          "reconcileInboundShipment", "Reconcile an inbound shipment into a transfer order (a"
          " sales order from the source warehouse, a purchase order to the network); receipts"
          " held on it are applied",
          {201: (TransferOrderView, "Created"),
           200: (TransferOrderView, "Reconciled before: the same transfer order")},
          body=ReconcileRequest, path_params=ID, also=(409,)),
    Route("GET", "/api/v1/transfer-orders", list_transfer_orders, "listTransferOrders",
          "Transfer orders, oldest change first; status=reconciled lists those not marked"
          " shipped yet", {200: (PageOf(TransferOrderView), "A page")},
          query=TransferOrderQuery),
    Route("GET", "/api/v1/transfer-orders/{id}", get_transfer_order, "getTransferOrder",
          "A transfer order: its sales order's and purchase order's progress, and receipts",
          {200: (TransferOrderView, "The transfer order")}, path_params=ID),
    Route("POST", "/api/v1/transfer-orders/{id}/ship", ship_transfer_order,
          "shipTransferOrder", "The goods left: the sales order shipped (its FO fulfilled),"
          " the units from on hand at the source to in transit",
          {200: (TransferOrderView, "Shipped (again with the same details: unchanged)")},
          body=ShipRequest, body_required=False, path_params=ID, also=(409,)),
    Route("GET", "/api/v1/inbound-receipts", list_inbound_receipts, "listInboundReceipts",
          "Receipts and discrepancies read from fulfilment networks, oldest first;"
          " state=held lists those waiting for their shipment to be reconciled,"
          " state=reported the discrepancies",
          {200: (PageOf(InboundReceipt), "A page")}, query=ReceiptQuery),
]
