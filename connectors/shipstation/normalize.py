"""ShipStation shipments and fulfillments -> canonical shipments. Pure: lookups happen outside."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from connectors.shipstation.pacific import pacific_to_utc
from gateway.domain.records import OrderRef, Shipment, ShipmentLine, utc_iso


def _utc(text: Any) -> str | None:
    return utc_iso(pacific_to_utc(text)) if isinstance(text, str) and text else None


def order_refs(record: Mapping[str, Any], related_orders: Iterable[Mapping[str, Any]]) -> tuple[OrderRef, ...]:
    """Every reference ShipStation gives: the record's own, its order's, a split parent's and
    a merge survivor's absorbed orders'."""
    refs: list[OrderRef] = []

    def add(kind: str, value: Any) -> None:
        if value not in (None, ""):
            ref = OrderRef(kind, str(value))
            if ref not in refs:
                refs.append(ref)

    add("order_key", record.get("orderKey"))
    add("partner_order_id", record.get("orderId"))
    add("order_number", record.get("orderNumber"))
    for order in related_orders:
        add("order_key", order.get("orderKey"))
        add("partner_order_id", order.get("orderId"))
        add("order_number", order.get("orderNumber"))
    return tuple(refs)


def _lines(items: Iterable[Mapping[str, Any]] | None) -> tuple[ShipmentLine, ...]:
    lines = []
    for item in items or []:
        if not isinstance(item, Mapping) or item.get("adjustment"):
            continue  # adjustments are non-physical lines (discounts, fees)
        sku = item.get("sku") or item.get("fulfillmentSku")
        if not sku:
            sku = f"orderItem:{item.get('orderItemId') or item.get('lineItemKey')}"
        line_id = item.get("lineItemKey") or item.get("orderItemId")
        lines.append(ShipmentLine(str(sku), int(item.get("quantity") or 0),
                                  str(line_id) if line_id is not None else None))
    return tuple(lines)


def shipment(source: str, record: Mapping[str, Any],
             related_orders: Iterable[Mapping[str, Any]] = ()) -> Shipment:
    """A label. Its version is its void date once voided, else its create date."""
    voided = bool(record.get("voided"))
    created = _utc(record.get("createDate"))
    if created is None:
        raise ValueError(f"shipment {record.get('shipmentId')}: no createDate")
    tracking = record.get("trackingNumber")
    return Shipment(
        source=source, external_id=str(record["shipmentId"]),
        order_refs=order_refs(record, related_orders),
        lines=_lines(record.get("shipmentItems")),
        status="voided" if voided else "shipped",
        partner_updated_at=(_utc(record.get("voidDate")) or created) if voided else created,
        shipped_at=created, carrier=record.get("carrierCode"),
        service=record.get("serviceCode"),
        tracking_numbers=(str(tracking),) if tracking else (),
    )


def fulfillment(source: str, record: Mapping[str, Any], order: Mapping[str, Any] | None,
                related_orders: Iterable[Mapping[str, Any]] = ()) -> Shipment:
    """An order marked shipped outside ShipStation. Fulfillments carry no items, so the lines
    are the order's items: marking an order shipped ships all of it."""
    voided = bool(record.get("voided"))
    created = _utc(record.get("createDate"))
    if created is None:
        raise ValueError(f"fulfillment {record.get('fulfillmentId')}: no createDate")
    delivered = _utc(record.get("deliveryDate"))
    if voided:
        status, version = "voided", _utc(record.get("voidDate")) or created
    elif delivered:
        status, version = "delivered", max(delivered, created)
    else:
        status, version = "shipped", created
    tracking = record.get("trackingNumber")
    return Shipment(
        source=source, external_id=f"fulfillment:{record['fulfillmentId']}",
        order_refs=order_refs(record, [o for o in [order, *related_orders] if o]),
        lines=_lines((order or {}).get("items")),
        status=status, partner_updated_at=version, shipped_at=_utc(record.get("shipDate")) or created,
        carrier=record.get("carrierCode"), service=record.get("fulfillmentServiceCode"),
        tracking_numbers=(str(tracking),) if tracking else (),
    )
