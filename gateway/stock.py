"""Stock sent to a fulfilment network, in the gateway's own terms: transfer orders and the
inventory ledger.

Reconciling an inbound shipment makes a transfer order: a sales order (an FO, so the FO
machinery and the console apply) for the units leaving the source warehouse, and a purchase
order for them arriving at the network's location. Marking it shipped records a shipment
against the FO (the command every shipment goes through) and moves the units from on hand at
the source to in transit to the destination. Each read of the shipment's items that finds
more units received than counted makes a receipt, in the inbox event's transaction: in transit
to on hand at the destination, held (listed, not in the ledger) until the shipment is
reconciled. A received count that goes down, units above those planned, and a SKU not planned
are recorded and reported (an `inventory.discrepancy` event, and the FO's timeline), never
applied; the network closing the shipment completes the purchase order and reports any
shortfall. Every change to the ledger is a movement; levels are their running sum.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from gateway.domain.records import (
    FulfillmentOrder,
    FulfillmentOrderLine,
    OrderRef,
    Shipment,
    ShipmentLine,
    fo_id_for,
    new_id,
)
from gateway.errors import Conflict, NotFound
from gateway.events import (
    DiscrepancyData,
    PurchaseOrderClosedData,
    PurchaseOrderReceivedData,
    ShippedLine,
    TransferLineData,
    TransferOrderData,
    TransferShippedData,
)
from gateway.ledger import Outcome, create_fulfillment_order, record_shipments
from gateway.names import (
    INVENTORY_DISCREPANCY,
    PURCHASE_ORDER_CLOSED,
    PURCHASE_ORDER_RECEIVED,
    TRANSFER_ORDER_CREATED,
    TRANSFER_ORDER_SHIPPED,
)
from gateway.outbound import Outbound
from storage import NewFulfillmentOrder, Transaction
from storage.models import (
    InboundReceipt,
    InboundShipmentView,
    Movement,
    TransferLine,
    TransferOrder,
)

if TYPE_CHECKING:
    from gateway.commands import Commands

TRANSFER_SOURCE = "transfer"  # the source of the shipment that marks a sales order shipped


def transfer_order_id(connector: str, inbound_shipment_id: str) -> str:
    """The same inbound shipment, reconciled twice, is one transfer order."""
    digest = hashlib.sha256(f"{connector}\x00{inbound_shipment_id}".encode()).hexdigest()[:24]
    return f"to_{digest}"


class Stock:
    """The transfer order commands; each one transaction, as every command."""

    def __init__(self, commands: Commands, outbound: Outbound) -> None:
        self.commands = commands
        self.outbound = outbound

    async def reconcile(self, connector: str, inbound_shipment_id: str, source_location: str,
                        destination_location: str) -> tuple[TransferOrder, bool]:
        """The shipment's transfer order, made now (True) or before (False); receipts held
        on the shipment are applied, and a shipment already closed closes its order."""
        async def change(tx: Transaction, at: str) -> tuple[tuple[TransferOrder, bool], int]:
            shipment = await tx.get_inbound_shipment(connector, inbound_shipment_id)
            if shipment is None:
                raise NotFound(f"inbound shipment {inbound_shipment_id} of {connector} does not"
                               " exist")
            existing = await tx.transfer_order_of(connector, inbound_shipment_id)
            if existing is not None:
                if existing.source_location != source_location:
                    raise Conflict(f"inbound shipment {inbound_shipment_id} is reconciled"
                                   f" already, from {existing.source_location}"
                                   f" ({existing.id})")
                return (existing, False), 0
            if shipment.stage == "cancelled":
                raise Conflict(f"inbound shipment {inbound_shipment_id} is {shipment.status}:"
                               " nothing to reconcile")
            lines = [TransferLine(i.sku, i.shipped) for i in shipment.items if i.shipped > 0]
            if not lines:
                raise Conflict(f"inbound shipment {inbound_shipment_id} has no items with units"
                               " shipped yet (its items are read by the receiving feed)")
            order_id = transfer_order_id(connector, inbound_shipment_id)
            order = TransferOrder(
                id=order_id, connector=connector, inbound_shipment_id=inbound_shipment_id,
                fulfillment_order_id=fo_id_for(connector, f"inbound:{inbound_shipment_id}"),
                purchase_order_id="po_" + order_id[3:], source_location=source_location,
                destination_location=destination_location, status="reconciled",
                purchase_order_status="open", lines=lines, created_at=at, updated_at=at)
            sent = await self._sales_order(tx, order, shipment, at)
            await tx.save_transfer_order(order)
            sent += await self.outbound.event(tx, TRANSFER_ORDER_CREATED, transfer_data(order),
                                              at, order.fulfillment_order_id)
            held = [r for r in await tx.receipts_of(connector, inbound_shipment_id)
                    if r.state == "held"]
            order, more = await apply_receipts(tx, order, held, at, self.outbound)
            sent += more
            if closing(shipment):
                order, more = await close(tx, order, at, self.outbound)
                sent += more
            return (order, True), sent

        return await self.commands.run(change)

    async def _sales_order(self, tx: Transaction, order: TransferOrder,
                           shipment: InboundShipmentView, at: str) -> int:
        fo = FulfillmentOrder(
            id=order.fulfillment_order_id, seq=0,
            lines=tuple(FulfillmentOrderLine(str(i + 1), ln.sku, ln.quantity)
                        for i, ln in enumerate(order.lines)),
            order_number=shipment.name or shipment.id,
            refs=(OrderRef("partner_order_id", shipment.id),))
        new = NewFulfillmentOrder(
            fo=fo, request_hash=hashlib.sha256(order.id.encode()).hexdigest(),
            ship_to={"location": order.destination_location,
                     "destination": shipment.destination},
            custom_fields={"transfer_order_id": order.id,
                           "source_location": order.source_location},
            created_at=at)
        created, outcome = await create_fulfillment_order(tx, new)
        if not created:
            return 0
        await tx.add_timeline(fo.id, "transfer_order_created", at, {
            "transfer_order_id": order.id, "inbound_shipment_id": order.inbound_shipment_id,
            "source_location": order.source_location,
            "destination_location": order.destination_location})
        return await self.commands.created(tx, fo.id, at, outcome) \
            + await self.commands.settle(tx, outcome, at)

    async def ship(self, order_id: str, carrier: str | None,
                   tracking_numbers: Sequence[str]) -> TransferOrder:
        """The sales order shipped (a shipment against its FO), the units from on hand at
        the source to in transit; shipping again with the same details changes nothing."""
        async def change(tx: Transaction, at: str) -> tuple[TransferOrder, int]:
            found = await tx.get_transfer_order(order_id)
            if found is None:
                raise NotFound(f"transfer order {order_id} does not exist")
            # held against a receipt being applied at the same moment
            await tx.get_inbound_shipment(found.connector, found.inbound_shipment_id)
            order = await tx.get_transfer_order(order_id)
            assert order is not None
            if order.shipped_at is not None:
                if (carrier is None and not tracking_numbers) or (
                        carrier == order.carrier
                        and list(tracking_numbers) == list(order.tracking_numbers)):
                    return order, 0
                raise Conflict(f"transfer order {order_id} was shipped at {order.shipped_at}"
                               f" with carrier {order.carrier!r} and tracking"
                               f" {list(order.tracking_numbers)}")
            [fo] = await tx.get_fulfillment_orders([order.fulfillment_order_id])
            if fo.cancelled:
                raise Conflict(f"transfer order {order_id}: its sales order"
                               f" {fo.id} is cancelled")
            outcome = Outcome()
            await record_shipments(tx, [Shipment(
                source=TRANSFER_SOURCE, external_id=order.id,
                order_refs=(OrderRef("fulfillment_order_id", order.fulfillment_order_id),),
                lines=tuple(ShipmentLine(ln.sku, ln.quantity) for ln in order.lines),
                status="shipped", partner_updated_at=at, shipped_at=at, carrier=carrier,
                tracking_numbers=tuple(tracking_numbers))], at, outcome)
            sent = await self.commands.settle(tx, outcome, at)
            await tx.move_inventory(
                [Movement(order.source_location, ln.sku, -ln.quantity, 0, "transfer_shipped",
                          order.id, at) for ln in order.lines]
                + [Movement(order.destination_location, ln.sku, 0, ln.quantity,
                            "transfer_shipped", order.id, at) for ln in order.lines])
            order = replace(order, status="shipped" if order.status == "reconciled"
                            else order.status, shipped_at=at, carrier=carrier,
                            tracking_numbers=list(tracking_numbers), updated_at=at)
            await tx.save_transfer_order(order)
            await tx.add_timeline(order.fulfillment_order_id, "transfer_order_shipped", at, {
                "transfer_order_id": order.id, "carrier": carrier,
                "tracking_numbers": list(tracking_numbers)})
            sent += await self.outbound.event(tx, TRANSFER_ORDER_SHIPPED, TransferShippedData(
                **transfer_data(order), carrier=carrier, tracking_numbers=list(tracking_numbers),
                shipped_at=at), at, order.fulfillment_order_id)
            return order, sent

        return await self.commands.run(change)


# what a read of an inbound shipment brings (in the inbox event's transaction)

def closing(shipment: InboundShipmentView) -> bool:
    """Closed by the network, and its items read since: the last receipts are in."""
    return shipment.stage == "closed" and shipment.closed_seen_at is not None \
        and shipment.items_seen_at is not None \
        and shipment.items_seen_at >= shipment.closed_seen_at


async def items_read(tx: Transaction, before: InboundShipmentView | None,
                     after: InboundShipmentView, at: str, outbound: Outbound) -> int:
    """What a newer read of the items changed: receipts (held, or applied to the transfer
    order) and discrepancies (reported); then the order closed if the network closed it."""
    order = await tx.transfer_order_of(after.connector, after.id)
    sent = 0
    if before is None or list(before.items) != list(after.items):
        found = await receipts(tx, before, after, order, at)
        if found:
            await tx.save_receipts(found)
            planned = _planned(after, order)
            for r in found:
                if r.state == "reported":
                    sent += await report(tx, r, order, planned.get(r.sku, 0), at, outbound)
            if order is not None:
                order, more = await apply_receipts(
                    tx, order, [r for r in found if r.state == "held"], at, outbound)
                sent += more
    if order is not None and order.purchase_order_status != "closed" and closing(after):
        order, more = await close(tx, order, at, outbound)
        sent += more
    return sent


def _planned(shipment: InboundShipmentView, order: TransferOrder | None) -> dict[str, int]:
    """Units planned per SKU: the transfer order's lines, else those shipped."""
    if order is not None:
        return {ln.sku: ln.quantity for ln in order.lines}
    return {i.sku: i.shipped for i in shipment.items}


async def receipts(tx: Transaction, before: InboundShipmentView | None,
                   after: InboundShipmentView, order: TransferOrder | None,
                   at: str) -> list[InboundReceipt]:
    """Per SKU, units received beyond those already counted (received, or reported as
    above the plan): a receipt up to the plan (state held; applied by the caller when there
    is an order), the rest reported; a count lower than the last read, reported."""
    counted: dict[str, int] = {}
    receipted: dict[str, int] = {}
    for r in await tx.receipts_of(after.connector, after.id):
        if r.kind in ("receipt", "over_receipt", "unplanned_sku"):
            counted[r.sku] = counted.get(r.sku, 0) + r.quantity
        if r.kind == "receipt":
            receipted[r.sku] = receipted.get(r.sku, 0) + r.quantity
    last = {i.sku: i.received for i in before.items} if before else {}
    planned = _planned(after, order)
    found = []

    def entry(sku: str, kind: str, quantity: int, was: int, now: int) -> None:
        found.append(InboundReceipt(
            id=new_id("rcp"), connector=after.connector, inbound_shipment_id=after.id,
            sku=sku, kind=kind, quantity=quantity, received_before=was, received_after=now,
            state="held" if kind == "receipt" else "reported",
            observed_at=after.items_seen_at or at, recorded_at=at,
            transfer_order_id=order.id if order else None))

    for item in after.items:
        was = last.get(item.sku, 0)
        if item.received < was:
            entry(item.sku, "decrease", was - item.received, was, item.received)
        new = item.received - counted.get(item.sku, 0)
        if new <= 0:
            continue
        plan = planned.get(item.sku, 0)
        if plan <= 0:
            entry(item.sku, "unplanned_sku", new, was, item.received)
            continue
        take = min(new, max(0, plan - receipted.get(item.sku, 0)))
        if take:
            entry(item.sku, "receipt", take, was, item.received)
        if new > take:
            entry(item.sku, "over_receipt", new - take, was, item.received)
    return found


async def apply_receipts(tx: Transaction, order: TransferOrder,
                         found: Sequence[InboundReceipt], at: str,
                         outbound: Outbound) -> tuple[TransferOrder, int]:
    """Receipts into the ledger (in transit to on hand at the destination) and onto the
    purchase order's lines; one `purchase_order.received` with the units."""
    if not found:
        return order, 0
    units: dict[str, int] = {}
    for r in found:
        units[r.sku] = units.get(r.sku, 0) + r.quantity
    await tx.save_receipts([replace(r, state="applied", transfer_order_id=order.id,
                                    applied_at=at) for r in found])
    await tx.move_inventory(Movement(order.destination_location, sku, quantity, -quantity,
                                     "transfer_received", order.id, at)
                            for sku, quantity in units.items())
    lines = [replace(ln, received=ln.received + units.get(ln.sku, 0)) for ln in order.lines]
    complete = all(ln.received >= ln.quantity for ln in lines)
    order = replace(order, lines=lines, updated_at=at,
                    purchase_order_status=order.purchase_order_status
                    if order.purchase_order_status == "closed"
                    else "received" if complete else "partially_received",
                    status="received" if complete and order.status != "closed"
                    else order.status)
    await tx.save_transfer_order(order)
    received = [ShippedLine(sku=sku, quantity=quantity) for sku, quantity in units.items()]
    await tx.add_timeline(order.fulfillment_order_id, "purchase_order_received", at, {
        "transfer_order_id": order.id, "units": received})
    return order, await outbound.event(tx, PURCHASE_ORDER_RECEIVED, PurchaseOrderReceivedData(
        **transfer_data(order), units=received), at, order.fulfillment_order_id)


async def close(tx: Transaction, order: TransferOrder, at: str,
                outbound: Outbound) -> tuple[TransferOrder, int]:
    """The network closed the shipment: the purchase order is complete; units planned and
    never received are reported as a shortfall (and stay in transit for a person)."""
    shortfall = [ShippedLine(sku=ln.sku, quantity=ln.quantity - ln.received)
                 for ln in order.lines if ln.received < ln.quantity]
    order = replace(order, purchase_order_status="closed", status="closed", closed_at=at,
                    updated_at=at)
    await tx.save_transfer_order(order)
    sent = 0
    for line in shortfall:
        received = next(ln.received for ln in order.lines if ln.sku == line["sku"])
        r = InboundReceipt(
            id=new_id("rcp"), connector=order.connector,
            inbound_shipment_id=order.inbound_shipment_id, sku=line["sku"], kind="shortfall",
            quantity=line["quantity"], received_before=received, received_after=received,
            state="reported", observed_at=at, recorded_at=at, transfer_order_id=order.id)
        await tx.save_receipts([r])
        sent += await report(tx, r, order, received + line["quantity"], at, outbound)
    await tx.add_timeline(order.fulfillment_order_id, "purchase_order_closed", at, {
        "transfer_order_id": order.id, "shortfall": shortfall})
    return order, sent + await outbound.event(tx, PURCHASE_ORDER_CLOSED, PurchaseOrderClosedData(
        **transfer_data(order), shortfall=shortfall), at, order.fulfillment_order_id)


async def report(tx: Transaction, r: InboundReceipt, order: TransferOrder | None,
                 planned: int, at: str, outbound: Outbound) -> int:
    data = DiscrepancyData(
        kind=r.kind, connector=r.connector, inbound_shipment_id=r.inbound_shipment_id,
        transfer_order_id=order.id if order else None, sku=r.sku, quantity=r.quantity,
        planned=planned, received_before=r.received_before, received_after=r.received_after)
    fo_id = order.fulfillment_order_id if order else None
    if fo_id is not None:
        await tx.add_timeline(fo_id, "inventory_discrepancy", at, dict(data))
    return await outbound.event(tx, INVENTORY_DISCREPANCY, data, at, fo_id)


def transfer_data(order: TransferOrder) -> TransferOrderData:
    return TransferOrderData(
        transfer_order_id=order.id, connector=order.connector,
        inbound_shipment_id=order.inbound_shipment_id,
        fulfillment_order_id=order.fulfillment_order_id,
        purchase_order_id=order.purchase_order_id, source_location=order.source_location,
        destination_location=order.destination_location, status=order.status,
        purchase_order_status=order.purchase_order_status,
        lines=[TransferLineData(sku=ln.sku, quantity=ln.quantity, received=ln.received)
               for ln in order.lines])

