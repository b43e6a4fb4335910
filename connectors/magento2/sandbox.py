"""A Magento 2 store stand-in, faithful to the subset the connector uses (stores.md): REST V1
under /rest/{store}/V1 with a bearer token; orders with Magento's statuses and states (an
order is `complete` only once every item is invoiced and shipped: one shipped but not
invoiced stays `processing`), listed by searchCriteria (filters in a group OR, groups AND)
with `total_count`, and the old versions' trap: a page past the end answers the last page
again; shipments (`/V1/order/{id}/ship`, items by order_item_id, no more than is left) with
tracks; tracks added (`/V1/shipment/track`) and deleted; no shipment cancel; Magento's
error bodies {message, parameters}.

Run standalone: fulfillment-gateway sandbox magento2 [--port 8086]
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from connectors.magento2.normalize import order_lines
from connectors.marketplace.sandbox import SandboxBase, add_control_routes, answer, json_body

STATE_KEY = web.AppKey("magento2_sandbox", object)
FILTER = re.compile(r"searchCriteria\[filter_groups\]\[(\d+)\]\[filters\]\[(\d+)\]\[(\w+)\]")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class MagentoState(SandboxBase):
    token: str = ""
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    shipments: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_id: int = 10

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def add_order(self, entity: dict[str, Any], invoiced: bool) -> dict[str, Any]:
        order_id = self.new_id()
        items = [{"item_id": self.new_id(), "order_id": order_id, "sku": i["sku"],
                  "name": i.get("name") or i["sku"], "qty_ordered": int(i["qty_ordered"]),
                  "qty_shipped": 0, "qty_invoiced": int(i["qty_ordered"]) if invoiced else 0,
                  "product_type": i.get("product_type", "simple"), "parent_item_id": None}
                 for i in entity.get("items") or []]
        if not items:
            raise ValueError("The order has no items.")
        now = _now()
        order = {"entity_id": order_id, "increment_id": f"0000000{order_id:02d}",
                 "ext_order_id": entity.get("ext_order_id"), "status": "processing",
                 "state": "processing", "created_at": now, "updated_at": now,
                 "customer_id": entity.get("customer_id"), "items": items,
                 "extension_attributes": entity.get("extension_attributes") or {
                     "shipping_assignments": [{"shipping": {"address": {
                         "firstname": "Ann", "lastname": "Buyer", "street": ["1 Main St"],
                         "city": "Austin", "region_code": "TX", "postcode": "78701",
                         "country_id": "US"}}}]}}
        self.orders[order_id] = order
        return order

    def touch(self, order: dict[str, Any]) -> None:
        order["updated_at"] = _now()
        lines = order_lines(order)
        if order["status"] != "canceled" and all(
                i["qty_shipped"] >= i["qty_ordered"] and i["qty_invoiced"] >= i["qty_ordered"]
                for i in lines):
            order["status"] = order["state"] = "complete"

    def ship(self, order: dict[str, Any], items: list[dict[str, Any]],
             tracks: list[dict[str, Any]]) -> dict[str, Any]:
        by_id = {i["item_id"]: i for i in order["items"]}
        if order["status"] in ("canceled", "complete", "closed"):
            raise ValueError("Shipment Document Validation Error(s):\nThe order does not allow"
                             " a shipment to be created.")
        for item in items:
            line = by_id.get(int(item["order_item_id"]))
            if line is None or float(item["qty"]) > line["qty_ordered"] - line["qty_shipped"]:
                raise ValueError("Shipment Document Validation Error(s):\nThe order does not"
                                 " allow a shipment to be created.")
        for item in items:
            by_id[int(item["order_item_id"])]["qty_shipped"] += int(float(item["qty"]))
        shipment_id = self.new_id()
        shipment = {"entity_id": shipment_id, "order_id": order["entity_id"],
                    "created_at": _now(), "updated_at": _now(),
                    "items": [{"order_item_id": int(i["order_item_id"]),
                               "sku": by_id[int(i["order_item_id"])]["sku"],
                               "qty": float(i["qty"])} for i in items],
                    "tracks": []}
        self.shipments[shipment_id] = shipment
        for track in tracks:
            self.add_track(shipment, track)
        self.touch(order)
        return shipment

    def add_track(self, shipment: dict[str, Any], track: dict[str, Any]) -> dict[str, Any]:
        made = {"entity_id": self.new_id(), "parent_id": shipment["entity_id"],
                "order_id": shipment["order_id"], "track_number": str(track["track_number"]),
                "title": track.get("title", ""), "carrier_code": track.get("carrier_code", "")}
        shipment["tracks"].append(made)
        shipment["updated_at"] = _now()
        self.orders[shipment["order_id"]]["updated_at"] = _now()
        return made


def state_of(app: web.Application) -> MagentoState:
    return app[STATE_KEY]  # type: ignore[return-value]


def _error(status: int, message: str, parameters: Any = None) -> web.Response:
    return answer({"message": message, **({"parameters": parameters} if parameters else {})},
                  status)


@web.middleware
async def platform(request: web.Request, handler: Any) -> web.StreamResponse:
    state = state_of(request.app)
    if request.path.startswith("/_sandbox"):
        return await handler(request)
    entry = {"method": request.method, "path": request.path, "query": dict(request.query),
             "at": time.time(), "status": 200}
    state.requests.append(entry)
    if request.headers.get("Authorization") != f"Bearer {state.token}":
        entry["status"] = 401
        return _error(401, 'The consumer isn\'t authorized to access %resources.',
                      {"resources": "Magento_Sales::sales"})
    fault = state.fault_for(request)
    if fault is not None and not fault.after:
        entry["status"] = fault.status
        if fault.status == 429:  # a host's or a proxy's limit: core Magento has none
            return web.Response(status=429, headers={"Retry-After": "1"},
                                text='{"message": "Too Many Requests"}',
                                content_type="application/json")
        return _error(fault.status, "Internal Error")
    try:
        response = await handler(request)
    except ValueError as exc:
        response = _error(400, str(exc))
    if fault is not None:
        entry["status"] = fault.status
        return _error(fault.status, "Internal Error")
    entry["status"] = response.status
    return response


def _criteria(query: Any) -> tuple[list[list[tuple[str, str, str]]], int, int]:
    groups: dict[int, dict[int, dict[str, str]]] = {}
    for key, value in query.items():
        match = FILTER.fullmatch(key)
        if match:
            g, f, part = match.groups()
            groups.setdefault(int(g), {}).setdefault(int(f), {})[part] = value
    parsed = [[(f["field"], f["value"], f.get("condition_type", "eq"))
               for _, f in sorted(group.items())] for _, group in sorted(groups.items())]
    return (parsed, int(query.get("searchCriteria[pageSize]", 20)),
            int(query.get("searchCriteria[currentPage]", 1)))


def _holds(record: dict[str, Any], field_name: str, value: str, condition: str) -> bool:
    have = str(record.get(field_name, ""))
    return {"eq": have == value, "gteq": have >= value, "lteq": have <= value,
            "gt": have > value, "lt": have < value, "neq": have != value,
            "in": have in value.split(",")}.get(condition, False)


def _search(records: list[dict[str, Any]], query: Any) -> web.Response:
    groups, size, page = _criteria(query)
    found = [r for r in records
             if all(any(_holds(r, *f) for f in group) for group in groups)]
    last = max(1, -(-len(found) // size))
    page = min(page, last)  # an older Magento's trap: past the end, the last page again
    return answer({"items": found[(page - 1) * size: page * size],
                   "search_criteria": {"current_page": page, "page_size": size},
                   "total_count": len(found)})


def _order(state: MagentoState, raw: str) -> dict[str, Any]:
    order = state.orders.get(int(raw)) if raw.isdigit() else None
    if order is None:
        raise web.HTTPNotFound(text=orjson.dumps({"message": "The entity that was requested"
                                                  " doesn't exist. Verify the entity and try"
                                                  " again."}).decode(),
                               content_type="application/json")
    return order


async def list_orders(request: web.Request) -> web.Response:
    return _search(list(state_of(request.app).orders.values()), request.query)


async def get_order(request: web.Request) -> web.Response:
    return answer(_order(state_of(request.app), request.match_info["order_id"]))


async def create_order(request: web.Request) -> web.Response:
    entity = (await json_body(request)).get("entity") or {}
    return answer(state_of(request.app).add_order(entity, invoiced=False))


async def cancel_order(request: web.Request) -> web.Response:
    state = state_of(request.app)
    order = _order(state, request.match_info["order_id"])
    if any(i["qty_shipped"] for i in order["items"]):
        return answer(False)
    order["status"] = order["state"] = "canceled"
    order["updated_at"] = _now()
    return answer(True)


async def ship_order(request: web.Request) -> web.Response:
    state = state_of(request.app)
    order = _order(state, request.match_info["order_id"])
    body = await json_body(request)
    items = body.get("items") or [{"order_item_id": i["item_id"],
                                   "qty": i["qty_ordered"] - i["qty_shipped"]}
                                  for i in order_lines(order) if i["qty_ordered"] > i["qty_shipped"]]
    return answer(state.ship(order, items, body.get("tracks") or [])["entity_id"])


async def list_shipments(request: web.Request) -> web.Response:
    return _search(list(state_of(request.app).shipments.values()), request.query)


async def add_track(request: web.Request) -> web.Response:
    state = state_of(request.app)
    entity = (await json_body(request)).get("entity") or {}
    shipment = state.shipments.get(int(entity.get("parent_id") or 0))
    if shipment is None:
        raise ValueError("The shipment doesn't exist.")
    return answer(state.add_track(shipment, entity))


async def delete_track(request: web.Request) -> web.Response:
    state = state_of(request.app)
    track_id = int(request.match_info["track_id"])
    for shipment in state.shipments.values():
        for track in shipment["tracks"]:
            if track["entity_id"] == track_id:
                shipment["tracks"].remove(track)
                shipment["updated_at"] = _now()
                state.orders[shipment["order_id"]]["updated_at"] = _now()
                return answer(True)
    return _error(404, "Could not delete shipment track")


# control routes

async def control_order(request: web.Request) -> web.Response:
    """A customer orders (paid, so invoiced): {lines: [{sku, quantity}]}."""
    state = state_of(request.app)
    body = await json_body(request)
    return answer(state.add_order({"items": [{"sku": ln["sku"], "qty_ordered": ln["quantity"]}
                                             for ln in body["lines"]]}, invoiced=True), 201)


async def control_ship(request: web.Request) -> web.Response:
    """The seller ships: {items: [{sku, qty}], tracks: [{track_number, title, carrier_code}]}."""
    state = state_of(request.app)
    order = _order(state, request.match_info["order_id"])
    body = await json_body(request)
    by_sku = {i["sku"]: i["item_id"] for i in order_lines(order)}
    return answer(state.ship(order, [{"order_item_id": by_sku[i["sku"]], "qty": i["qty"]}
                                     for i in body["items"]], body.get("tracks") or []), 201)


async def control_retrack(request: web.Request) -> web.Response:
    """The seller corrects a shipment the only way Magento allows: its tracks replaced."""
    state = state_of(request.app)
    shipment = state.shipments[int(request.match_info["shipment_id"])]
    shipment["tracks"].clear()
    for track in (await json_body(request)).get("tracks") or []:
        state.add_track(shipment, track)
    return answer(shipment)


async def control_state(request: web.Request) -> web.Response:
    state = state_of(request.app)
    return answer({"orders": {str(k): o for k, o in state.orders.items()},
                   "shipments": {str(k): s for k, s in state.shipments.items()}})


def create_app(token: str, store_code: str = "default") -> web.Application:
    app = web.Application(middlewares=[platform])
    app[STATE_KEY] = MagentoState(token=token)
    add_control_routes(app, STATE_KEY)
    base = f"/rest/{store_code}/V1"
    r = app.router
    r.add_get(f"{base}/orders", list_orders)
    r.add_put(f"{base}/orders/create", create_order)
    r.add_get(f"{base}/orders/{{order_id}}", get_order)
    r.add_post(f"{base}/orders/{{order_id}}/cancel", cancel_order)
    r.add_post(f"{base}/order/{{order_id}}/ship", ship_order)
    r.add_get(f"{base}/shipments", list_shipments)
    r.add_post(f"{base}/shipment/track", add_track)
    r.add_delete(f"{base}/shipment/track/{{track_id}}", delete_track)
    r.add_post("/_sandbox/orders", control_order)
    r.add_post("/_sandbox/orders/{order_id}/ship", control_ship)
    r.add_post("/_sandbox/shipments/{shipment_id}/retrack", control_retrack)
    r.add_get("/_sandbox/state", control_state)
    return app
