"""Magento 2's orders and shipments (REST V1) as the gateway's records (stores.md, Magento 2).

Order statuses: `processing` is to ship; `complete` and `closed` are done (`complete` needs
every item invoiced and shipped: shipped but not invoiced stays `processing`); `canceled`
ends it; `pending`, `holded` and `payment_review` are not yet orders to ship. Configurable
products list a parent and a child item: the parent's line (with its SKU) is the order line.
Magento cannot cancel a shipment; a seller corrects one by replacing its tracks, so a
shipment's id here carries its track ids: new tracks make it a new shipment and the old one
voided, which is how the correction reaches the buyer.
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

TO_SHIP, DONE, ENDED = frozenset({"processing"}), frozenset({"complete", "closed"}), \
    frozenset({"canceled"})
ADDRESS = {"company": "company", "city": "city", "region_code": "state",
           "postcode": "postal_code", "country_id": "country", "telephone": "phone"}


def timestamp(value: Any, fallback: str) -> str:
    """Magento's dates: "2026-12-01 10:00:00", UTC, no offset."""
    if not value:
        return fallback
    try:
        return utc_iso(parse_iso(str(value).replace(" ", "T") + "Z"))
    except ValueError:
        return fallback


def magento_time(iso: str) -> str:
    return parse_iso(iso).strftime("%Y-%m-%d %H:%M:%S")


def status_of(order: Mapping[str, Any]) -> str | None:
    status = str(order.get("status") or "")
    if status in ENDED:
        return "cancelled"
    if status in DONE:
        return "closed"
    return "open" if status in TO_SHIP else None


def order_lines(order: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The order's own lines: a configurable product's child items are left out."""
    return [i for i in order.get("items") or [] if isinstance(i, dict)
            and not i.get("parent_item_id")]


def ship_to(order: Mapping[str, Any]) -> dict[str, Any]:
    assignments = (order.get("extension_attributes") or {}).get("shipping_assignments") or []
    address = ((assignments[0] if assignments else {}).get("shipping") or {}).get("address") \
        or {}
    found = {ours: address[theirs] for theirs, ours in ADDRESS.items()
             if address.get(theirs) not in (None, "")}
    street = [s for s in address.get("street") or [] if s]
    for n, line in enumerate(street[:3]):
        found[f"street{n + 1}"] = line
    name = " ".join(str(address[k]) for k in ("firstname", "lastname") if address.get(k))
    if name:
        found["name"] = name
    return found


def partner_order(source: str, order: Mapping[str, Any], at: str) -> PartnerOrder:
    lines = tuple(PartnerOrderLine(str(i.get("sku") or i["item_id"]), int(i["qty_ordered"]),
                                   str(i["item_id"]))
                  for i in order_lines(order) if int(i.get("qty_ordered") or 0) > 0)
    return PartnerOrder(
        source=source, external_id=str(order["entity_id"]), status=status_of(order) or "open",
        lines=lines, partner_updated_at=timestamp(order.get("updated_at"), at),
        order_number=str(order.get("increment_id") or order["entity_id"]),
        ship_to=ship_to(order),
        customer_ref=str(order["customer_id"]) if order.get("customer_id") else None,
        raw={k: order[k] for k in ("status", "state", "increment_id", "grand_total",
                                   "created_at") if k in order})


def shipment_key(shipment: Mapping[str, Any]) -> str:
    tracks = sorted(str(t.get("entity_id")) for t in shipment.get("tracks") or [])
    return f"{shipment['entity_id']}:" + hashlib.sha256("|".join(tracks).encode()
                                                       ).hexdigest()[:10]


def shipments(source: str, detail: Mapping[str, Any], at: str) -> list[Shipment]:
    """A seller's order's shipments that carry tracks (one without is withdrawn)."""
    order = detail["summary"]
    refs = [OrderRef("partner_order_id", str(detail["order_id"]))]
    if str(order.get("ext_order_id") or "").startswith("fo_"):
        refs.insert(0, OrderRef("fulfillment_order_id", str(order["ext_order_id"])))
    found = []
    for s in detail.get("shipments") or []:
        tracks = [t for t in s.get("tracks") or [] if t.get("track_number")]
        lines = tuple(ShipmentLine(str(i.get("sku")), int(float(i.get("qty") or 0)),
                                   str(i.get("order_item_id")))
                      for i in s.get("items") or [] if float(i.get("qty") or 0) > 0)
        if not tracks or not lines:
            continue
        found.append(Shipment(
            source=source, external_id=shipment_key(s), order_refs=tuple(refs), lines=lines,
            status="shipped", partner_updated_at=timestamp(s.get("updated_at"), at),
            shipped_at=timestamp(s.get("created_at"), at),
            carrier=tracks[0].get("carrier_code") or tracks[0].get("title") or None,
            tracking_numbers=tuple(str(t["track_number"]) for t in tracks)))
    return found
