"""A BigCommerce store stand-in, faithful to the subset the connector uses (stores.md):
`X-Auth-Token`; v2 orders with status ids (shipments roll the order up to Partially Shipped
and Shipped; deleting one does not move it back, as in BigCommerce), their products and
shipping addresses; shipments needing `order_address_id` and `order_product_id`s with no more
than is left to ship, one tracking number each (at most 50 characters); page/limit listings
filtered by min/max_date_modified (RFC 2822), 204 on an empty list; the X-Rate-Limit-* headers
on every answer and 429 past the quota; v3 webhooks (thin: scope and id) signed as Standard
Webhooks with the client secret, sent where /_sandbox/hooks says.

Run standalone: fulfillment-gateway sandbox bigcommerce [--port 8083]
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from standardwebhooks import Webhook

from connectors.bigcommerce.normalize import rfc2822, timestamp
from connectors.marketplace.sandbox import (
    Quota,
    SandboxBase,
    add_control_routes,
    answer,
    hook_session,
    json_body,
)
from gateway.domain.records import now_iso

STATE_KEY = web.AppKey("bigcommerce_sandbox", object)
SESSION_KEY = web.AppKey("bigcommerce_hooks", aiohttp.ClientSession)
STATUS_NAMES = {0: "Incomplete", 1: "Pending", 2: "Shipped", 3: "Partially Shipped",
                4: "Refunded", 5: "Cancelled", 6: "Declined", 7: "Awaiting Payment",
                9: "Awaiting Shipment", 10: "Completed", 11: "Awaiting Fulfillment"}


def _now() -> str:
    return rfc2822(now_iso())


@dataclass
class BigCommerceState(SandboxBase):
    token: str = ""
    client_secret: str = ""
    quota: Quota = field(default_factory=lambda: Quota(150, 30.0))
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    products: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    addresses: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    shipments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    next_id: int = 100

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def add_order(self, body: dict[str, Any]) -> dict[str, Any]:
        order_id = self.new_id()
        now = _now()
        address = dict((body.get("shipping_addresses") or [{}])[0] or {})
        address.setdefault("first_name", "Ann")
        address.setdefault("last_name", "Buyer")
        address.setdefault("street_1", "1 Main St")
        address.setdefault("city", "Austin")
        address.setdefault("zip", "78701")
        address.setdefault("country_iso2", "US")
        address["id"], address["order_id"] = self.new_id(), order_id
        self.addresses[order_id] = [address]
        self.products[order_id] = [{
            "id": self.new_id(), "order_id": order_id, "product_id": 1000 + n,
            "sku": p.get("sku"), "name": p.get("name") or p.get("sku"),
            "quantity": int(p["quantity"]), "quantity_shipped": 0}
            for n, p in enumerate(body.get("products") or [])]
        self.shipments[order_id] = []
        order = {"id": order_id, "status_id": int(body.get("status_id", 11)),
                 "customer_id": int(body.get("customer_id", 0)),
                 "external_id": body.get("external_id"),
                 "external_source": body.get("external_source"),
                 "staff_notes": body.get("staff_notes", ""), "date_created": now,
                 "date_modified": now, "currency_code": "USD",
                 "billing_address": body.get("billing_address") or address}
        order["status"] = STATUS_NAMES.get(order["status_id"], "")
        self.orders[order_id] = order
        return order

    def touch(self, order_id: int, status_id: int | None = None) -> None:
        order = self.orders[order_id]
        if status_id is not None:
            order["status_id"], order["status"] = status_id, STATUS_NAMES.get(status_id, "")
        order["date_modified"] = _now()

    def ship(self, order_id: int, items: list[dict[str, Any]], tracking: str,
             **fields: Any) -> dict[str, Any]:
        """A shipment, checked as BigCommerce checks one; ValueError says what is wrong."""
        products = {p["id"]: p for p in self.products[order_id]}
        for item in items:
            product = products.get(int(item.get("order_product_id", 0)))
            if product is None:
                raise ValueError(f"order_product_id {item.get('order_product_id')} is not a"
                                 " product of this order")
            if int(item["quantity"]) > product["quantity"] - product["quantity_shipped"]:
                raise ValueError(f"quantity {item['quantity']} is more than is left to ship"
                                 f" of order product {product['id']}")
        if len(tracking) > 50:
            raise ValueError("tracking_number is longer than 50 characters")
        for item in items:
            products[int(item["order_product_id"])]["quantity_shipped"] += int(item["quantity"])
        shipment = {"id": self.new_id(), "order_id": order_id, "date_created": _now(),
                    "tracking_number": tracking, "items": [
                        {"order_product_id": int(i["order_product_id"]),
                         "product_id": products[int(i["order_product_id"])]["product_id"],
                         "quantity": int(i["quantity"])} for i in items],
                    "generated_tracking_link": f"https://track.example/{tracking}"
                    if tracking else "", **fields}
        self.shipments[order_id].append(shipment)
        left = sum(p["quantity"] - p["quantity_shipped"] for p in products.values())
        self.touch(order_id, 2 if left == 0 else 3)
        return shipment


def state_of(app: web.Application) -> BigCommerceState:
    return app[STATE_KEY]  # type: ignore[return-value]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return answer([{"status": status, "message": message}], status, headers)


@web.middleware
async def platform(request: web.Request, handler: Any) -> web.StreamResponse:
    state = state_of(request.app)
    if request.path.startswith("/_sandbox"):
        return await handler(request)
    entry = {"method": request.method, "path": request.path, "query": dict(request.query),
             "at": time.time(), "status": 200}
    state.requests.append(entry)
    allowed, left, reset = state.quota.take()
    limits = {"X-Rate-Limit-Requests-Quota": str(state.quota.limit),
              "X-Rate-Limit-Requests-Left": str(left),
              "X-Rate-Limit-Time-Window-Ms": str(int(state.quota.window_seconds * 1000)),
              "X-Rate-Limit-Time-Reset-Ms": str(int(reset * 1000))}
    if not allowed:
        entry["status"] = 429
        return _error(429, "You have exceeded your request quota", limits)
    if request.headers.get("X-Auth-Token") != state.token:
        entry["status"] = 401
        return _error(401, "You are not authorized to access this resource", limits)
    fault = state.fault_for(request)
    if fault is not None and not fault.after:
        entry["status"] = fault.status
        return _error(fault.status, "Internal server error", limits)
    try:
        response = await handler(request)
    except ValueError as exc:
        response = _error(400, str(exc))
    if fault is not None:
        entry["status"] = fault.status
        return _error(fault.status, "Internal server error", limits)
    entry["status"] = response.status
    response.headers.update(limits)
    return response


def _order(request: web.Request) -> tuple[BigCommerceState, int]:
    state = state_of(request.app)
    try:
        order_id = int(request.match_info["order_id"])
    except ValueError:
        raise web.HTTPNotFound() from None
    if order_id not in state.orders:
        raise web.HTTPNotFound(text='[{"status":404,"message":"The requested resource was not'
                                    ' found."}]', content_type="application/json")
    return state, order_id


def _listing(items: list[Any]) -> web.Response:
    return answer(items) if items else web.Response(status=204)


async def list_orders(request: web.Request) -> web.Response:
    state = state_of(request.app)
    q = request.query
    low = timestamp(q["min_date_modified"], "") if "min_date_modified" in q else ""
    high = timestamp(q["max_date_modified"], "") if "max_date_modified" in q else "~"
    found = [o for o in state.orders.values()
             if low <= timestamp(o["date_modified"], "") <= high
             and ("status_id" not in q or o["status_id"] == int(q["status_id"]))]
    found.sort(key=lambda o: (timestamp(o["date_modified"], ""), o["id"]))
    limit, page = min(int(q.get("limit", 50)), 250), int(q.get("page", 1))
    return _listing(found[(page - 1) * limit: page * limit])


async def create_order(request: web.Request) -> web.Response:
    state = state_of(request.app)
    body = await json_body(request)
    if not body.get("products") or not body.get("billing_address"):
        raise ValueError("products and billing_address are required")
    order = state.add_order(body)
    _hook(request, "store/order/created", {"type": "order", "id": order["id"]})
    return answer(order, 201)


async def get_order(request: web.Request) -> web.Response:
    state, order_id = _order(request)
    return answer(state.orders[order_id])


async def update_order(request: web.Request) -> web.Response:
    state, order_id = _order(request)
    body = await json_body(request)
    before = state.orders[order_id]["status_id"]
    state.touch(order_id, int(body["status_id"]) if "status_id" in body else None)
    _hook(request, "store/order/statusUpdated" if before != state.orders[order_id]["status_id"]
          else "store/order/updated", {"type": "order", "id": order_id})
    return answer(state.orders[order_id])


async def order_products(request: web.Request) -> web.Response:
    state, order_id = _order(request)
    return _listing(state.products[order_id])


async def order_addresses(request: web.Request) -> web.Response:
    state, order_id = _order(request)
    return _listing(state.addresses[order_id])


async def list_shipments(request: web.Request) -> web.Response:
    state, order_id = _order(request)
    return _listing(state.shipments[order_id])


async def create_shipment(request: web.Request) -> web.Response:
    state, order_id = _order(request)
    body = await json_body(request)
    if int(body.get("order_address_id", 0)) not in {a["id"] for a in state.addresses[order_id]}:
        raise ValueError("order_address_id is required and must be an address of this order")
    if not body.get("items"):
        raise ValueError("items are required")
    shipment = state.ship(order_id, body["items"], str(body.get("tracking_number") or ""), **{
        k: body[k] for k in ("shipping_provider", "tracking_carrier", "tracking_link",
                             "comments", "shipping_method") if k in body})
    _hook(request, "store/shipment/created",
          {"type": "shipment", "id": shipment["id"], "orderId": order_id})
    return answer(shipment, 201)


async def delete_shipment(request: web.Request) -> web.Response:
    state, order_id = _order(request)
    removed = _remove_shipment(state, order_id, int(request.match_info["shipment_id"]))
    if not removed:
        raise web.HTTPNotFound()
    _hook(request, "store/shipment/deleted", {"type": "shipment",
                                              "id": int(request.match_info["shipment_id"]),
                                              "orderId": order_id})
    return web.Response(status=204)


def _remove_shipment(state: BigCommerceState, order_id: int, shipment_id: int) -> bool:
    """Items go back to "left to ship"; the order's status stays (BigCommerce's trap)."""
    shipment = next((s for s in state.shipments[order_id] if s["id"] == shipment_id), None)
    if shipment is None:
        return False
    state.shipments[order_id].remove(shipment)
    products = {p["id"]: p for p in state.products[order_id]}
    for item in shipment["items"]:
        products[item["order_product_id"]]["quantity_shipped"] -= item["quantity"]
    state.touch(order_id)
    return True


def _hook(request: web.Request, scope: str, data: dict[str, Any]) -> None:
    state = state_of(request.app)
    payload = {"scope": scope, "store_id": "1001", "producer": "stores/sandbox",
               "data": data, "created_at": int(time.time())}
    body = orjson.dumps({**payload, "hash": hashlib.sha1(orjson.dumps(payload)).hexdigest()})
    msg_id = f"msg_{hashlib.sha1(body).hexdigest()[:20]}"
    moment = datetime.now(UTC)
    signer = Webhook(base64.b64encode(state.client_secret.encode()).decode())
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(moment.timestamp())),
               "webhook-signature": signer.sign(msg_id, moment, body.decode())}
    state.send_hook(request.app.get(SESSION_KEY), body, headers)


# control routes

async def control_order(request: web.Request) -> web.Response:
    """A buyer places an order in this store: {products: [{sku, quantity}], shipping_address,
    status_id (default 11)}."""
    state = state_of(request.app)
    body = await json_body(request)
    order = state.add_order({**body, "shipping_addresses": [body.get("shipping_address") or {}]})
    _hook(request, "store/order/created", {"type": "order", "id": order["id"]})
    return answer({**order, "products": state.products[order["id"]]}, 201)


async def control_ship(request: web.Request) -> web.Response:
    """The seller ships: {items: [{sku, quantity}], tracking_number, shipping_provider}."""
    state, order_id = _order(request)
    body = await json_body(request)
    by_sku = {p["sku"]: p["id"] for p in state.products[order_id]}
    items = [{"order_product_id": by_sku[i["sku"]], "quantity": i["quantity"]}
             for i in body["items"]]
    shipment = state.ship(order_id, items, str(body.get("tracking_number") or ""),
                          shipping_provider=body.get("shipping_provider", "ups"))
    _hook(request, "store/shipment/created",
          {"type": "shipment", "id": shipment["id"], "orderId": order_id})
    return answer(shipment, 201)


async def control_delete_shipment(request: web.Request) -> web.Response:
    state, order_id = _order(request)
    if not _remove_shipment(state, order_id, int(request.match_info["shipment_id"])):
        raise web.HTTPNotFound()
    _hook(request, "store/shipment/deleted", {"type": "shipment",
                                              "id": int(request.match_info["shipment_id"]),
                                              "orderId": order_id})
    return answer({"deleted": True})


async def control_status(request: web.Request) -> web.Response:
    state, order_id = _order(request)
    body = await json_body(request)
    state.touch(order_id, int(body["status_id"]))
    _hook(request, "store/order/statusUpdated", {"type": "order", "id": order_id})
    return answer(state.orders[order_id])


async def control_state(request: web.Request) -> web.Response:
    state = state_of(request.app)
    return answer({"orders": {str(k): {**o, "products": state.products[k],
                                       "shipments": state.shipments[k]}
                              for k, o in state.orders.items()},
                   "hooks_sent": state.hooks_sent})


def create_app(token: str, client_secret: str, quota: int = 150,
               window_seconds: float = 30.0) -> web.Application:
    app = web.Application(middlewares=[platform])
    app[STATE_KEY] = BigCommerceState(token=token, client_secret=client_secret,
                                      quota=Quota(quota, window_seconds))
    hook_session(app, SESSION_KEY)
    add_control_routes(app, STATE_KEY)
    r = app.router
    r.add_get("/v2/orders", list_orders)
    r.add_post("/v2/orders", create_order)
    r.add_get("/v2/orders/{order_id}", get_order)
    r.add_put("/v2/orders/{order_id}", update_order)
    r.add_get("/v2/orders/{order_id}/products", order_products)
    r.add_get("/v2/orders/{order_id}/shipping_addresses", order_addresses)
    r.add_get("/v2/orders/{order_id}/shipments", list_shipments)
    r.add_post("/v2/orders/{order_id}/shipments", create_shipment)
    r.add_delete("/v2/orders/{order_id}/shipments/{shipment_id}", delete_shipment)
    r.add_post("/_sandbox/orders", control_order)
    r.add_post("/_sandbox/orders/{order_id}/ship", control_ship)
    r.add_post("/_sandbox/orders/{order_id}/status", control_status)
    r.add_post("/_sandbox/orders/{order_id}/shipments/{shipment_id}/delete",
               control_delete_shipment)
    r.add_get("/_sandbox/state", control_state)
    return app
