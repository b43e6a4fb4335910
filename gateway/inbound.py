"""Inbound shipments (stock sent to a fulfilment network), applied in the inbox event's
transaction: a read's header and items merged into what the gateway keeps, a status seen for
the first time added to the history, an older read never over a newer one, and an
`inbound_shipment.synced` event when anything changed; then what the read means for stock
(receipts, discrepancies, the purchase order closed: gateway/stock.py)."""

from __future__ import annotations

from dataclasses import replace

from gateway import stock
from gateway.domain.records import InboundShipment
from gateway.events import InboundItemData, InboundSyncedData
from gateway.names import INBOUND_SHIPMENT_SYNCED
from gateway.outbound import Outbound
from storage import Transaction
from storage.models import InboundItemView, InboundShipmentView, StatusSeen


async def record(tx: Transaction, shipment: InboundShipment, at: str,
                 outbound: Outbound) -> int:
    stored = await tx.get_inbound_shipment(shipment.source, shipment.external_id)
    kept = stored or InboundShipmentView(
        connector=shipment.source, id=shipment.external_id, name=None, destination=None,
        status=None, status_history=[], items=[], created_at=at, updated_at=at)
    new = kept
    header = shipment.status is not None or shipment.name is not None
    if header and (kept.header_seen_at is None or shipment.observed_at >= kept.header_seen_at):
        history = list(kept.status_history)
        if shipment.status is not None and (not history or history[-1].status != shipment.status):
            history.append(StatusSeen(shipment.status, shipment.observed_at))
        stage = shipment.stage or kept.stage
        new = replace(new, name=shipment.name or kept.name,
                      destination=shipment.destination or kept.destination,
                      status=shipment.status or kept.status, status_history=history,
                      header_seen_at=shipment.observed_at, stage=stage,
                      closed_seen_at=(kept.closed_seen_at or shipment.observed_at)
                      if stage == "closed" else None)
    if shipment.items is not None and (kept.items_seen_at is None
                                       or shipment.observed_at >= kept.items_seen_at):
        new = replace(new, items=[InboundItemView(i.sku, i.shipped, i.received, i.case_quantity)
                                  for i in shipment.items], items_seen_at=shipment.observed_at)
    changed = stored is None or (new.status, new.stage, new.name, new.destination,
                                 list(new.items)) != (stored.status, stored.stage, stored.name,
                                                      stored.destination, list(stored.items))
    if new == kept and stored is not None:
        return 0  # an older read, or nothing read
    # A read that changed nothing still records when it was made (a closed shipment's items
    # are read until then), but not as a change: updated_at is when something changed.
    saved = replace(new, updated_at=at if changed else kept.updated_at)
    await tx.save_inbound_shipment(saved)
    sent = await stock.items_read(tx, stored, saved, at, outbound)
    if not changed:
        return sent
    return sent + await outbound.event(tx, INBOUND_SHIPMENT_SYNCED, InboundSyncedData(
        connector=new.connector, inbound_shipment_id=new.id, name=new.name,
        destination=new.destination, status=new.status, stage=new.stage,
        previous_status=stored.status if stored else None,
        items=[InboundItemData(sku=i.sku, shipped=i.shipped, received=i.received,
                               case_quantity=i.case_quantity) for i in new.items]), at)
