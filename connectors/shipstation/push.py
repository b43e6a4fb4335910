"""Orders out to ShipStation: the FO as a createorder body, keyed by the FO id as orderKey.

createorder updates the order whose orderKey matches, so re-sending a push (after a crash,
a timeout) changes nothing; a cancel is the same body with orderStatus "cancelled". ShipStation
refuses to update a shipped or cancelled order (400), so when it refuses, the order is looked
up: if it is already in the state we asked for, the call has succeeded before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.shipstation.client import ShipStationClient
from connectors.shipstation.pacific import pacific_stamp
from gateway.domain.records import parse_iso
from gateway.errors import PartnerRejected, PartnerUnavailable
from gateway.outbound import apply_partner_fields

# Statuses an order we placed can be in; a refused re-push of such an order was placed before.
PLACED = {"awaiting_payment", "awaiting_shipment", "pending_fulfillment", "on_hold", "shipped"}
# The gateway's ship_to names (snake_case) and ShipStation's address fields.
ADDRESS_FIELDS = {"name": "name", "company": "company", "street1": "street1",
                  "street2": "street2", "street3": "street3", "city": "city", "state": "state",
                  "postal_code": "postalCode", "country": "country", "phone": "phone",
                  "residential": "residential"}


def address(ship_to: Mapping[str, Any]) -> dict[str, Any]:
    found = {partner: ship_to[ours] for ours, partner in ADDRESS_FIELDS.items() if ours in ship_to}
    # ShipStation's own spelling passes through as well.
    found |= {k: v for k, v in ship_to.items() if k in ADDRESS_FIELDS.values()}
    return found


def order_body(order: Mapping[str, Any], status: str = "awaiting_shipment") -> dict[str, Any]:
    ship_to = address(order.get("ship_to") or {})
    body: dict[str, Any] = {
        "orderNumber": order.get("order_number") or order["fulfillment_order_id"],
        "orderKey": order["fulfillment_order_id"],
        "orderDate": pacific_stamp(parse_iso(order["created_at"])),
        "orderStatus": status,
        "billTo": {"name": ship_to.get("name")},
        "shipTo": ship_to,
        "items": [{"lineItemKey": line["line_id"], "sku": line["sku"], "name": line["sku"],
                   "quantity": line["quantity"]} for line in order["lines"]],
    }
    if order.get("store_id") is not None:
        body["advancedOptions"] = {"storeId": order["store_id"]}
    return apply_partner_fields(body, order.get("partner_fields") or {})


def _result(answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict) or answer.get("orderId") is None:
        raise PartnerUnavailable("createorder answered without an orderId")
    return {"partner_order_id": str(answer["orderId"]), "order_key": answer.get("orderKey"),
            "order_status": answer.get("orderStatus")}


async def _existing(client: ShipStationClient, order: Mapping[str, Any]) -> dict[str, Any] | None:
    number = order.get("order_number") or order["fulfillment_order_id"]
    async for found in client.pages(client.url("/orders"), {"orderNumber": number}, "orders"):
        if found.get("orderKey") == order["fulfillment_order_id"]:
            return found
    return None


async def upsert(client: ShipStationClient, order: Mapping[str, Any], status: str,
                 done_if: set[str]) -> dict[str, Any]:
    """createorder; a refusal is success when the order is already in one of `done_if`."""
    try:
        return _result(await client.request("POST", client.url("/orders/createorder"),
                                            json_body=order_body(order, status)))
    except PartnerRejected as refused:
        existing = await _existing(client, order)
        if existing is not None and existing.get("orderStatus") in done_if:
            return _result(existing) | {"already": True}
        raise refused
