"""BigCommerce's v2 orders and shipments as the gateway's records (stores.md, BigCommerce).

Order statuses by id: 9 Awaiting Shipment, 11 Awaiting Fulfillment and 3 Partially Shipped are
"to ship"; 2 Shipped and 10 Completed are done; 5 Cancelled, 6 Declined and 4 Refunded end the
order; the rest (pending, awaiting payment, ...) are not yet orders to ship. A shipment carries
one tracking number, its items by `order_product_id`.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import parsedate_to_datetime
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

TO_SHIP = frozenset({3, 9, 11})
DONE = frozenset({2, 10})
ENDED = frozenset({4, 5, 6})
SHIPPED, PARTIALLY_SHIPPED, CANCELLED, AWAITING_FULFILLMENT = 2, 3, 5, 11
# BigCommerce's own shipping_provider values (others go as tracking_carrier, AfterShip's slug).
PROVIDERS = frozenset({"auspost", "canadapost", "endicia", "usps", "fedex", "royalmail", "ups",
                       "upsready", "upsonline", "shipperhq"})
ADDRESS = {"street_1": "street1", "street_2": "street2", "city": "city", "state": "state",
           "zip": "postal_code", "country_iso2": "country", "phone": "phone",
           "company": "company"}


def timestamp(value: Any, fallback: str) -> str:
    """BigCommerce v2 writes RFC 2822 dates ("Tue, 20 Nov 2012 00:00:00 +0000")."""
    if not value:
        return fallback
    try:
        return utc_iso(parsedate_to_datetime(str(value)))
    except (TypeError, ValueError):
        try:
            return utc_iso(parse_iso(str(value)))
        except ValueError:
            return fallback


def rfc2822(iso: str) -> str:
    return parse_iso(iso).strftime("%a, %d %b %Y %H:%M:%S +0000")


def status_of(order: Mapping[str, Any]) -> str | None:
    """The partner order status, or None for an order not yet to ship (not taken)."""
    status = int(order.get("status_id") or 0)
    if status in ENDED:
        return "cancelled"
    if status in DONE:
        return "closed"
    return "open" if status in TO_SHIP else None


def ship_to(address: Mapping[str, Any]) -> dict[str, Any]:
    found = {ours: address[theirs] for theirs, ours in ADDRESS.items()
             if address.get(theirs) not in (None, "")}
    name = " ".join(str(address[k]) for k in ("first_name", "last_name") if address.get(k))
    if name:
        found["name"] = name
    return found


def partner_order(source: str, detail: Mapping[str, Any], at: str) -> PartnerOrder:
    """An order with its products and shipping addresses (read with it)."""
    order = detail["order"]
    lines = tuple(PartnerOrderLine(str(p.get("sku") or p.get("product_id")), int(p["quantity"]),
                                   str(p["id"]))
                  for p in detail.get("products") or [] if int(p.get("quantity") or 0) > 0)
    addresses = detail.get("shipping_addresses") or []
    status = status_of(order) or "open"
    return PartnerOrder(
        source=source, external_id=str(order["id"]), status=status, lines=lines,
        partner_updated_at=timestamp(order.get("date_modified"), at),
        order_number=str(order["id"]), ship_to=ship_to(addresses[0]) if addresses else {},
        customer_ref=str(order.get("customer_id")) if order.get("customer_id") else None,
        raw={k: order[k] for k in ("status", "status_id", "total_inc_tax", "currency_code",
                                   "date_created") if k in order})


def shipments(source: str, detail: Mapping[str, Any], at: str) -> list[Shipment]:
    """A seller's order's shipments; each item's SKU from the order's products."""
    order = detail["summary"]
    skus = {str(k): v for k, v in (detail.get("products") or {}).items()}
    refs = [OrderRef("partner_order_id", str(detail["order_id"]))]
    if str(order.get("external_id") or "").startswith("fo_"):
        refs.insert(0, OrderRef("fulfillment_order_id", str(order["external_id"])))
    found = []
    for s in detail.get("shipments") or []:
        lines = tuple(ShipmentLine(str(skus.get(str(i["order_product_id"]),
                                                i["order_product_id"])),
                                   int(i["quantity"]), str(i["order_product_id"]))
                      for i in s.get("items") or [] if int(i.get("quantity") or 0) > 0)
        if not lines:
            continue
        created = timestamp(s.get("date_created"), at)
        carrier = s.get("shipping_provider") or s.get("tracking_carrier") or None
        found.append(Shipment(
            source=source, external_id=str(s["id"]), order_refs=tuple(refs), lines=lines,
            status="shipped", partner_updated_at=created, shipped_at=created,
            carrier=carrier, service=s.get("shipping_method") or None,
            tracking_numbers=(str(s["tracking_number"]),) if s.get("tracking_number") else (),
            tracking_url=s.get("tracking_link") or s.get("generated_tracking_link") or None))
    return found
