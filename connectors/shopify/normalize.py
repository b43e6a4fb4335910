"""Shopify's GraphQL orders and fulfilments as the gateway's records (stores.md, Shopify).

An order is cancelled once `cancelledAt` is set and done when closed or FULFILLED; a
fulfilment is a shipment while SUCCESS and voided once CANCELLED (or ERROR/FAILURE); OPEN and
PENDING ones are not shipped yet and are left out. Lines are keyed by Shopify's line item ids,
which are the FO line ids of an order from Shopify.
"""

from __future__ import annotations

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

ADDRESS = {"name": "name", "company": "company", "address1": "street1",
           "address2": "street2", "city": "city", "provinceCode": "state",
           "zip": "postal_code", "countryCodeV2": "country", "phone": "phone"}
SHIPPED, VOIDED = frozenset({"SUCCESS"}), frozenset({"CANCELLED", "ERROR", "FAILURE"})


def timestamp(value: Any, fallback: str) -> str:
    try:
        return utc_iso(parse_iso(str(value)))
    except (TypeError, ValueError):
        return fallback


def nodes(connection: Any) -> list[dict[str, Any]]:
    if isinstance(connection, dict):
        return [n for n in connection.get("nodes") or [] if isinstance(n, dict)]
    return [n for n in connection or [] if isinstance(n, dict)]


def status_of(order: Mapping[str, Any]) -> str:
    if order.get("cancelledAt"):
        return "cancelled"
    if order.get("closed") or order.get("displayFulfillmentStatus") == "FULFILLED":
        return "closed"
    return "open"


def ship_to(address: Mapping[str, Any] | None) -> dict[str, Any]:
    return {ours: address[theirs] for theirs, ours in ADDRESS.items()
            if address and address.get(theirs) not in (None, "")}


def partner_order(source: str, order: Mapping[str, Any], at: str) -> PartnerOrder:
    lines = tuple(PartnerOrderLine(str(item.get("sku") or item["id"]), int(item["quantity"]),
                                   str(item["id"]))
                  for item in nodes(order.get("lineItems")) if int(item.get("quantity") or 0) > 0)
    return PartnerOrder(
        source=source, external_id=str(order["id"]), status=status_of(order), lines=lines,
        partner_updated_at=timestamp(order.get("updatedAt"), at),
        order_number=str(order.get("name") or order["id"]),
        ship_to=ship_to(order.get("shippingAddress")),
        raw={k: order[k] for k in ("name", "displayFulfillmentStatus", "createdAt",
                                   "cancelledAt") if k in order})


def shipments(source: str, order: Mapping[str, Any], at: str) -> list[Shipment]:
    refs = [OrderRef("partner_order_id", str(order["id"]))]
    if str(order.get("sourceIdentifier") or "").startswith("fo_"):
        refs.insert(0, OrderRef("fulfillment_order_id", str(order["sourceIdentifier"])))
    found = []
    for f in order.get("fulfillments") or []:
        status = f.get("status")
        if status not in SHIPPED | VOIDED:
            continue
        lines = tuple(ShipmentLine(str(n["lineItem"].get("sku") or n["lineItem"]["id"]),
                                   int(n["quantity"]), str(n["lineItem"]["id"]))
                      for n in nodes(f.get("fulfillmentLineItems")) if int(n["quantity"]) > 0)
        if not lines:
            continue
        tracking = [t for t in f.get("trackingInfo") or [] if isinstance(t, dict)]
        found.append(Shipment(
            source=source, external_id=str(f["id"]), order_refs=tuple(refs), lines=lines,
            status="shipped" if status in SHIPPED else "voided",
            partner_updated_at=timestamp(f.get("updatedAt"), at),
            shipped_at=timestamp(f.get("createdAt"), at),
            carrier=next((t["company"] for t in tracking if t.get("company")), None),
            tracking_numbers=tuple(t["number"] for t in tracking if t.get("number")),
            tracking_url=next((t["url"] for t in tracking if t.get("url")), None)))
    return found
