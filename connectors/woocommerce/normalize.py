"""WooCommerce's orders (REST wc/v3) and their tracking as the gateway's records (stores.md).

Classic WooCommerce has no shipment object: the Shipment Tracking extension keeps an order's
parcels in its meta `_wc_shipment_tracking_items` (one item per tracking number), without the
items in each. So a seller's order becomes one shipment once WooCommerce says it is done
(`completed`): every line, every tracking number, the first link; a tracking item that names
its products (`products_list`, as the AST plugin's per-item tracking does: UNCONFIRMED) is a
shipment of those products at once, partial or not. The shipment's id carries its tracking
ids, so a seller who deletes a number and adds another makes it a new shipment (the old one
voided), which is how a correction reaches the buyer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from gateway.domain.records import (
    OrderRef,
    PartnerOrder,
    PartnerOrderLine,
    Shipment,
    ShipmentLine,
    parse_iso,
    utc_iso,
)

TRACKING_META = "_wc_shipment_tracking_items"
FO_META = "_fulfillment_gateway_fo_id"
TO_SHIP, DONE = frozenset({"processing"}), frozenset({"completed"})
ENDED = frozenset({"cancelled", "refunded", "failed", "trash"})
ADDRESS = {"company": "company", "address_1": "street1", "address_2": "street2",
           "city": "city", "state": "state", "postcode": "postal_code",
           "country": "country", "phone": "phone"}


def timestamp(value: Any, fallback: str) -> str:
    """WooCommerce's `*_gmt` fields: ISO 8601 without an offset, in UTC."""
    if not value:
        return fallback
    text = str(value)
    try:
        return utc_iso(parse_iso(text if text.endswith("Z") or "+" in text[10:]
                                 else text + "Z"))
    except ValueError:
        return fallback


def status_of(order: Mapping[str, Any]) -> str | None:
    status = str(order.get("status") or "")
    if status in ENDED:
        return "cancelled"
    if status in DONE:
        return "closed"
    return "open" if status in TO_SHIP else None


def meta(order: Mapping[str, Any], key: str) -> Any:
    return next((m.get("value") for m in order.get("meta_data") or []
                 if isinstance(m, dict) and m.get("key") == key), None)


def ship_to(order: Mapping[str, Any]) -> dict[str, Any]:
    address = order.get("shipping") or {}
    found = {ours: address[theirs] for theirs, ours in ADDRESS.items()
             if address.get(theirs) not in (None, "")}
    name = " ".join(str(address[k]) for k in ("first_name", "last_name") if address.get(k))
    if name:
        found["name"] = name
    return found


def partner_order(source: str, order: Mapping[str, Any], at: str) -> PartnerOrder:
    lines = tuple(PartnerOrderLine(str(item.get("sku") or item.get("product_id")),
                                   int(item["quantity"]), str(item["id"]))
                  for item in order.get("line_items") or [] if int(item.get("quantity") or 0) > 0)
    return PartnerOrder(
        source=source, external_id=str(order["id"]), status=status_of(order) or "open",
        lines=lines, partner_updated_at=timestamp(order.get("date_modified_gmt"), at),
        order_number=str(order.get("number") or order["id"]), ship_to=ship_to(order),
        customer_ref=str(order["customer_id"]) if order.get("customer_id") else None,
        raw={k: order[k] for k in ("status", "currency", "total", "date_created_gmt")
             if k in order})


def tracking_items(order: Mapping[str, Any]) -> list[dict[str, Any]]:
    items = meta(order, TRACKING_META)
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def shipments(source: str, order: Mapping[str, Any], at: str) -> list[Shipment]:
    refs = [OrderRef("partner_order_id", str(order["id"]))]
    fo_id = meta(order, FO_META)
    if isinstance(fo_id, str) and fo_id.startswith("fo_"):
        refs.insert(0, OrderRef("fulfillment_order_id", fo_id))
    lines_by_item = {str(i["id"]): i for i in order.get("line_items") or []}
    updated = timestamp(order.get("date_modified_gmt"), at)
    found, whole = [], []
    for item in tracking_items(order):
        listed = item.get("products_list")
        if isinstance(listed, list) and listed:  # per-item tracking: these products only
            lines = tuple(ShipmentLine(
                str((lines_by_item.get(str(p.get("item_id"))) or {}).get("sku")
                    or p.get("product_id")), int(p.get("qty") or 0), str(p.get("item_id")))
                for p in listed if int(p.get("qty") or 0) > 0)
            if lines:
                found.append(_shipment(source, f"{order['id']}:{item.get('tracking_id')}",
                                       refs, lines, [item], updated))
        else:
            whole.append(item)
    if str(order.get("status")) in DONE and (whole or not found):
        lines = tuple(ShipmentLine(str(i.get("sku") or i.get("product_id")),
                                   int(i["quantity"]), str(i["id"]))
                      for i in order.get("line_items") or [] if int(i.get("quantity") or 0))
        shipped_per_item = {ln.partner_line_id: ln.quantity for s in found for ln in s.lines}
        rest = tuple(ShipmentLine(ln.sku, ln.quantity - shipped_per_item.get(
            ln.partner_line_id, 0), ln.partner_line_id) for ln in lines
            if ln.quantity > shipped_per_item.get(ln.partner_line_id, 0))
        if rest:
            key = hashlib.sha256("|".join(sorted(str(i.get("tracking_id")) for i in whole)
                                          ).encode()).hexdigest()[:12]
            found.append(_shipment(source, f"{order['id']}:done:{key}", refs, rest, whole,
                                   updated))
    return found


def _shipment(source: str, external_id: str, refs: list[OrderRef],
              lines: tuple[ShipmentLine, ...], items: list[dict[str, Any]],
              updated: str) -> Shipment:
    first = items[0] if items else {}
    shipped = first.get("date_shipped")
    return Shipment(
        source=source, external_id=external_id, order_refs=tuple(refs), lines=lines,
        status="shipped", partner_updated_at=updated,
        shipped_at=timestamp(f"{shipped}T00:00:00" if shipped and len(str(shipped)) == 10
                             else shipped, updated),
        carrier=first.get("tracking_provider") or first.get("custom_tracking_provider") or None,
        tracking_numbers=tuple(str(i["tracking_number"]) for i in items
                               if i.get("tracking_number")),
        tracking_url=first.get("tracking_link") or first.get("custom_tracking_link") or None)
