"""NuOrder's records, as the gateway keeps them.

A polled order arrives with its SKUs resolved at poll time (`{line_id: sku or null}`, see
skus.py), so normalizing reads nothing but the event. Companies, products and locations are
partner records keyed by NuOrder's `_id`; orders are also kept as records (`orders`, each as
last seen) besides becoming partner orders. NuOrder's schemas are flexible (custom fields
appear): everything not named here is kept as it came.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.nuorder.skus import line_id
from gateway.domain.records import PartnerOrder, PartnerOrderLine, PartnerRecord, parse_iso, utc_iso

# NuOrder's address fields and the gateway's ship_to names.
ADDRESS = {"name": "name", "company": "company", "line_1": "street1", "line_2": "street2",
           "line_3": "street3", "city": "city", "state": "state", "zip": "postal_code",
           "country": "country", "phone": "phone"}
KINDS = ("companies", "products", "locations", "orders")
PRODUCES = (PartnerOrder, PartnerRecord)


def timestamp(value: Any, fallback: str) -> str:
    try:
        return utc_iso(parse_iso(str(value)))
    except (ValueError, OverflowError):
        return fallback


def ship_to(order: Mapping[str, Any]) -> dict[str, Any]:
    address = order.get("shipping_address") or {}
    found = {ours: address[theirs] for theirs, ours in ADDRESS.items()
             if address.get(theirs) not in (None, "")}
    retailer = order.get("retailer") or {}
    if "company" not in found and retailer.get("retailer_name"):
        found["company"] = retailer["retailer_name"]
    if "name" not in found and retailer.get("buyer_name"):
        found["name"] = retailer["buyer_name"]
    if isinstance(found.get("country"), str) and len(found["country"]) == 2:
        found["country"] = found["country"].upper()
    return found


def wanted_sizes(order: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each product-and-size the order asks for: {line_id: {product, size, quantity}}, the
    quantities of a size listed twice (two warehouses, say) added up."""
    found: dict[str, dict[str, Any]] = {}
    for item in order.get("line_items") or []:
        product = item.get("product") or {}
        for size in item.get("sizes") or []:
            quantity = int(size.get("quantity") or 0)
            if quantity <= 0:
                continue
            key = line_id(str(product.get("_id")), str(size.get("size")))
            entry = found.setdefault(key, {"product": product, "size": size, "quantity": 0})
            entry["quantity"] += quantity
    return found


def partner_order(source: str, order: Mapping[str, Any], skus: Mapping[str, str | None],
                  received_at: str) -> PartnerOrder:
    lines, unmapped = [], []
    for key, wanted in wanted_sizes(order).items():
        sku = skus.get(key)
        if sku is None:
            product = wanted["product"]
            unmapped.append(f"{product.get('style_number') or product.get('_id')}"
                            f" {product.get('color') or ''} size {wanted['size'].get('size')}"
                            .replace("  ", " "))
            continue
        lines.append(PartnerOrderLine(sku, wanted["quantity"], key))
    status = "cancelled" if order.get("status") == "cancelled" else "open"
    hold = None
    if unmapped and status == "open":
        hold = (f"no SKU for {', '.join(unmapped)} (no UPC in NuOrder's product, or no product"
                " of that id): add it in NuOrder; the order is taken on the next poll")
    retailer = order.get("retailer") or {}
    return PartnerOrder(
        source=source, external_id=str(order["_id"]), status=status, lines=tuple(lines),
        partner_updated_at=timestamp(order.get("modified_on"), received_at),
        order_number=str(order["order_number"]) if order.get("order_number") else None,
        ship_to=ship_to(order),
        customer_ref=retailer.get("retailer_code") or retailer.get("_id"),
        raw={k: order[k] for k in ("status", "order_number", "customer_po_number",
                                   "currency_code", "total", "start_ship", "end_ship")
             if k in order}, hold_reason=hold)


def record(source: str, kind: str, fields: Mapping[str, Any], received_at: str) -> PartnerRecord:
    """A company, product, location or order as NuOrder last showed it."""
    archived = bool(fields.get("archived")) or (kind == "products" and fields.get("active") is False)
    if kind == "orders":
        archived = fields.get("status") == "cancelled"
    return PartnerRecord(
        source=source, kind=kind, external_id=str(fields["_id"]),
        fields={k: v for k, v in fields.items() if k != "_id"},
        updated_at=timestamp(fields.get("modified_on"), received_at), archived=archived)
