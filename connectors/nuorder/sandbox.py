"""A NuOrder stand-in, faithful to the subset the connector uses (../shared/partners/nuorder.md):
OAuth 1.0a checked for real, in both signing styles, against the secrets it was made with; the
one-time handshake; companies with unique codes (409 on a duplicate), products with sizes and
UPCs, warehouses, orders with NuOrder's statuses and the transitions between them, shipments
written to orders, replenishments and inventory-flag refreshes recorded as received; NuOrder's
error bodies {"code", "message"}; faults on command.

Paths nuorder.md marks UNCONFIRMED are played as connectors/nuorder/api.py assumes them.

Control routes (no auth):
  POST /_sandbox/approve           approve the pending application: answers its verifier
  GET  /_sandbox/requests          the request log (method, path, query, status)
  GET  /_sandbox/state             companies, products, warehouses, orders, replenishments,
                                   flag refreshes
  POST /_sandbox/orders            add or replace an order (NuOrder's fields; _id optional)
  POST /_sandbox/orders/{id}       change an order as a buyer or brand user would (any fields,
                                   e.g. status, line_items, shipping_address): modified_on moves
  POST /_sandbox/companies | /_sandbox/products | /_sandbox/warehouses   add or replace one
  POST /_sandbox/faults            {"path": prefix, "method"?, "status": 500|429|..., "times": n,
                                   "delay_seconds"?, "after"?}: the next n matching calls fail
                                   (or answer late; with "after", fail once carried out: an
                                   answer lost on the way); {"clear": true} removes them
Run standalone: fulfillment-gateway sandbox nuorder [--port 8082]
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from connectors.nuorder.signing import Credentials, verify

STATE_KEY = web.AppKey("nuorder_sandbox", object)
# NuOrder's order statuses and the moves between them (nuorder.md "Statuses"); "cancelled"
# locks an order, "shipped" is the last step.
TRANSITIONS = {
    "draft": {"pending", "review", "cancelled"},
    "pending": {"approved", "review", "cancelled"},
    "review": {"approved", "pending", "cancelled"},
    "approved": {"processed", "shipped", "pending", "cancelled"},
    "processed": {"shipped", "cancelled"},
    "shipped": set(),
    "cancelled": set(),
}


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def object_id() -> str:
    return secrets.token_hex(12)  # NuOrder's ids: 24 hex digits


@dataclass
class Fault:
    path: str
    method: str | None
    status: int
    times: int
    delay_seconds: float = 0.0
    after: bool = False  # the call is carried out, then answered with the error (a lost answer)


@dataclass
class SandboxState:
    credentials: Credentials  # what the configured gateway signs with
    requests: list[dict[str, Any]] = field(default_factory=list)
    # handshake: temporary token -> (its secret, the verifier once approved)
    pending: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    companies: dict[str, dict[str, Any]] = field(default_factory=dict)
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    warehouses: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    replenishments: list[dict[str, Any]] = field(default_factory=list)
    flag_refreshes: list[list[str]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)

    def calls(self, method: str, path_prefix: str) -> int:
        """How many signed calls reached a path (a toggle's proof that it stopped them)."""
        return sum(1 for r in self.requests
                   if r["method"] == method and r["path"].startswith(path_prefix))

    def add(self, kind: str, record: dict[str, Any]) -> dict[str, Any]:
        record = {"_id": object_id(), **record, "modified_on": stamp()}
        record.setdefault("created_on", record["modified_on"])
        if kind == "orders":
            record.setdefault("status", "approved")
            record.setdefault("shipments", [])
        getattr(self, kind)[record["_id"]] = record
        return record


def _error(status: int, message: str) -> web.Response:
    """NuOrder's error body: {"code": status, "message": ...}."""
    return web.Response(body=orjson.dumps({"code": status, "message": message}),
                        status=status, content_type="application/json")


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status,
                        content_type="application/json")


def state_of(app: web.Application) -> SandboxState:
    return app[STATE_KEY]  # type: ignore[return-value]


@web.middleware
async def oauth(request: web.Request,
                handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                ) -> web.StreamResponse:
    if not request.path.startswith("/api/"):
        return await handler(request)
    state = state_of(request.app)
    header = request.headers.get("Authorization", "")
    entry = {"at": time.monotonic(), "method": request.method, "path": request.path,
             "query": dict(request.query), "status": None}
    state.requests.append(entry)
    creds = state.credentials
    if request.path == "/api/initiate":
        creds = Credentials(creds.consumer_key, creds.consumer_secret)
    elif request.path == "/api/token":
        token = _param(header, "oauth_token")
        pending = state.pending.get(token)
        creds = Credentials(creds.consumer_key, creds.consumer_secret, token,
                            pending[0] if pending else "")
    if not verify(request.method, str(request.url), header, creds):
        entry["status"] = 401
        return _error(401, "Invalid OAuth header or signature")
    fault = next((f for f in state.faults if request.path.startswith(f.path)
                  and f.method in (None, request.method)), None)
    if fault is not None:
        fault.times -= 1
        if fault.times <= 0:
            state.faults.remove(fault)
        if fault.delay_seconds:
            await asyncio.sleep(fault.delay_seconds)
        if fault.after:
            await handler(request)
        if fault.status >= 400:
            entry["status"] = fault.status
            message = "Too many requests" if fault.status == 429 else "Internal server error"
            return _error(fault.status, message)
    response = await handler(request)
    entry["status"] = response.status
    return response


def _param(header: str, name: str) -> str:
    for part in header.removeprefix("OAuth ").split(","):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value.strip('"')
    return ""


async def _body(request: web.Request) -> Any:
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise web.HTTPBadRequest(body=orjson.dumps({"code": 400, "message": "invalid JSON"}),
                                 content_type="application/json") from None


# the handshake

async def initiate(request: web.Request) -> web.Response:
    state = state_of(request.app)
    token, secret = secrets.token_hex(12), secrets.token_hex(16)
    state.pending[token] = (secret, None)
    return _json({"oauth_token": token, "oauth_token_secret": secret,
                  "oauth_callback_confirmed": True})


async def token(request: web.Request) -> web.Response:
    state = state_of(request.app)
    header = request.headers.get("Authorization", "")
    temporary = _param(header, "oauth_token")
    pending = state.pending.get(temporary)
    if pending is None or pending[1] is None or _param(header, "oauth_verifier") != pending[1]:
        return _error(401, "Request token not approved, or the verifier is wrong")
    del state.pending[temporary]
    return _json({"oauth_token": state.credentials.token,
                  "oauth_token_secret": state.credentials.token_secret})


# companies

async def company_codes(request: web.Request) -> web.Response:
    return _json([c["code"] for c in state_of(request.app).companies.values()])


async def companies_list(request: web.Request) -> web.Response:
    since = request.query.get("modified_since", "")
    return _json([c for c in state_of(request.app).companies.values()
                  if c["modified_on"] >= since])


async def company_new(request: web.Request) -> web.Response:
    """PUT /api/company/new: 409 on a code in use; .../new/force upserts by code."""
    state, body = state_of(request.app), await _body(request)
    if not isinstance(body, dict) or not body.get("code") or not body.get("name") \
            and request.path.endswith("/new"):
        return _error(400, "name and code are required")
    existing = next((c for c in state.companies.values() if c["code"] == body["code"]), None)
    if existing is not None and not request.path.endswith("/force"):
        return _error(409, f"company with code {body['code']} already exists")
    if existing is None:
        return _json(state.add("companies", {"archived": False, **body}))
    existing.update(body, modified_on=stamp())
    return _json(existing)


# products and warehouses

async def products_list(request: web.Request) -> web.Response:
    return _json(list(state_of(request.app).products.values()))


async def warehouses_list(request: web.Request) -> web.Response:
    return _json(list(state_of(request.app).warehouses.values()))


# orders

def _order(request: web.Request) -> dict[str, Any]:
    order = state_of(request.app).orders.get(request.match_info["id"])
    if order is None:
        raise web.HTTPNotFound(body=orjson.dumps({"code": 404, "message": "order not found"}),
                               content_type="application/json")
    return order


async def orders_by_status(request: web.Request) -> web.Response:
    """GET /api/orders/{status}/list (ids) and .../detail (whole orders); detail takes the
    date range modified_after / modified_before (the range parameters are UNCONFIRMED)."""
    status, view = request.match_info["status"], request.match_info["view"]
    after = request.query.get("modified_after", "")
    before = request.query.get("modified_before", "\uffff")
    found = [o for o in state_of(request.app).orders.values()
             if o["status"] == status and after <= o["modified_on"] <= before]
    return _json([o["_id"] for o in found] if view == "list" else found)


async def order_get(request: web.Request) -> web.Response:
    return _json(_order(request))


def _move(order: dict[str, Any], status: str) -> web.Response | None:
    if status == order["status"]:
        return None  # already there: the same answer again
    if status not in TRANSITIONS.get(order["status"], set()):
        return _error(400, f"order {order['order_number']} cannot go from {order['status']}"
                           f" to {status}")
    order["status"], order["modified_on"] = status, stamp()
    return None


async def order_process(request: web.Request) -> web.Response:
    order = _order(request)
    return _move(order, "processed") or _json(order)


async def order_cancel(request: web.Request) -> web.Response:
    order = _order(request)
    return _move(order, "cancelled") or _json(order)


async def order_status(request: web.Request) -> web.Response:
    order, body = _order(request), await _body(request)
    status = body.get("status") if isinstance(body, dict) else None
    if status not in TRANSITIONS:
        return _error(400, f"unknown status {status!r}")
    return _move(order, status) or _json(order)


async def shipment_add(request: web.Request) -> web.Response:
    """UNCONFIRMED (see api.py): a shipment on an order, once per external_id."""
    order, body = _order(request), await _body(request)
    if order["status"] in ("cancelled", "draft"):
        return _error(400, f"order {order['order_number']} is {order['status']}")
    if not isinstance(body, dict) or not body.get("external_id") or not body.get("lines"):
        return _error(400, "external_id and lines are required")
    known = {(ln["product"]["_id"], s["size"]) for ln in order["line_items"]
             for s in ln["sizes"]}
    for line in body["lines"]:
        if (line.get("product_id"), line.get("size")) not in known:
            return _error(400, f"order has no product {line.get('product_id')} size"
                               f" {line.get('size')}")
    for shipment in order["shipments"]:
        if shipment["external_id"] == body["external_id"] and not shipment.get("voided"):
            return _json(shipment)  # a retry: the same shipment
    shipment = {"_id": object_id(), **body, "created_on": stamp()}
    order["shipments"].append(shipment)
    order["modified_on"] = stamp()
    return _json(shipment, 201)


async def shipment_delete(request: web.Request) -> web.Response:
    order = _order(request)
    for shipment in order["shipments"]:
        if shipment["_id"] == request.match_info["shipment"]:
            shipment["voided"] = True
            order["modified_on"] = stamp()
            return _json({"success": True})
    return _error(404, "shipment not found")


# inventory

async def replenishments(request: web.Request) -> web.Response:
    """PUT /api/v3.0/warehouse/{wh}/replenishments: levels per SKU id and period."""
    state, body = state_of(request.app), await _body(request)
    warehouse = request.match_info["warehouse"]
    if warehouse not in state.warehouses:
        return _error(404, f"warehouse {warehouse} not found")
    items = body.get("replenishments") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        return _error(400, "replenishments: a non-empty list")
    sku_ids = {s["_id"] for p in state.products.values() for s in p.get("sizes", [])}
    for item in items:
        if item.get("sku_id") not in sku_ids:
            return _error(404, f"sku {item.get('sku_id')} not found")
        if not isinstance(item.get("quantity"), int):
            return _error(400, "quantity: an integer")
    state.replenishments.append({"warehouse": warehouse, "replenishments": items})
    return _json({"success": True, "count": len(items)})


async def inventory_flags(request: web.Request) -> web.Response:
    state, body = state_of(request.app), await _body(request)
    ids = body.get("product_ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not ids:
        return _error(400, "product_ids: a non-empty list")
    state.flag_refreshes.append(list(ids))
    return _json({"success": True})


# control routes

async def control_approve(request: web.Request) -> web.Response:
    state = state_of(request.app)
    for temporary, (secret, verifier) in state.pending.items():
        if verifier is None:
            verifier = secrets.token_hex(4)
            state.pending[temporary] = (secret, verifier)
            return _json({"oauth_token": temporary, "oauth_verifier": verifier})
    return _error(404, "no application is waiting for approval")


async def control_requests(request: web.Request) -> web.Response:
    return _json(state_of(request.app).requests)


async def control_state(request: web.Request) -> web.Response:
    s = state_of(request.app)
    return _json({"companies": list(s.companies.values()), "products": list(s.products.values()),
                  "warehouses": list(s.warehouses.values()), "orders": list(s.orders.values()),
                  "replenishments": s.replenishments, "flag_refreshes": s.flag_refreshes})


def control_add(kind: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        body = await _body(request)
        if not isinstance(body, dict):
            return _error(400, "an object")
        return _json(state_of(request.app).add(kind, body), 201)
    return handler


async def control_change_order(request: web.Request) -> web.Response:
    order, body = _order(request), await _body(request)
    order.update(body, modified_on=stamp())
    return _json(order)


async def control_faults(request: web.Request) -> web.Response:
    state, body = state_of(request.app), await _body(request)
    if body.get("clear"):
        state.faults.clear()
        return _json({"faults": 0})
    state.faults.append(Fault(body["path"], body.get("method"), int(body.get("status", 500)),
                              int(body.get("times", 1)), float(body.get("delay_seconds", 0)),
                              bool(body.get("after", False))))
    return _json({"faults": len(state.faults)})


def create_app(credentials: Credentials) -> web.Application:
    app = web.Application(middlewares=[oauth])
    app[STATE_KEY] = SandboxState(credentials)
    r = app.router
    r.add_get("/api/initiate", initiate)
    r.add_get("/api/token", token)
    r.add_get("/api/companies/codes/list", company_codes)
    r.add_get("/api/companies/list", companies_list)
    r.add_put("/api/company/new", company_new)
    r.add_put("/api/company/new/force", company_new)
    r.add_get("/api/products/list", products_list)
    r.add_get("/api/warehouses/list", warehouses_list)
    r.add_get(r"/api/orders/{status}/{view:list|detail}", orders_by_status)
    r.add_get("/api/order/{id}", order_get)
    r.add_post("/api/order/{id}/process", order_process)
    r.add_post("/api/order/{id}/cancel", order_cancel)
    r.add_post("/api/order/{id}/status", order_status)
    r.add_post("/api/order/{id}/shipments", shipment_add)
    r.add_delete("/api/order/{id}/shipments/{shipment}", shipment_delete)
    r.add_put("/api/v3.0/warehouse/{warehouse}/replenishments", replenishments)
    r.add_put("/api/inventory/flags", inventory_flags)
    r.add_post("/_sandbox/approve", control_approve)
    r.add_get("/_sandbox/requests", control_requests)
    r.add_get("/_sandbox/state", control_state)
    r.add_post("/_sandbox/orders", control_add("orders"))
    r.add_post("/_sandbox/orders/{id}", control_change_order)
    r.add_post("/_sandbox/companies", control_add("companies"))
    r.add_post("/_sandbox/products", control_add("products"))
    r.add_post("/_sandbox/warehouses", control_add("warehouses"))
    r.add_post("/_sandbox/faults", control_faults)
    return app
