"""A Shopify store stand-in, faithful to the subset the connector uses (stores.md): the GraphQL
Admin endpoint, its queries validated and run by graphql-core against schema.graphql (a field
Shopify does not have is refused as Shopify would); `X-Shopify-Access-Token`; orders with line
items, fulfilment orders (remaining quantities, closed when nothing is left) and fulfilments
(SUCCESS or CANCELLED, tracking info); `userErrors` with HTTP 200 for what Shopify refuses
(more than remains, a cancelled fulfilment cancelled again); the cost bucket in
`extensions.cost.throttleStatus` and THROTTLED (HTTP 200) when a query costs more than is
left; webhooks signed with the app's client secret (base64 HMAC-SHA256 of the raw body in
X-Shopify-Hmac-Sha256), each with its X-Shopify-Webhook-Id, sent where /_sandbox/hooks says.

Run standalone: fulfillment-gateway sandbox shopify [--port 8084]
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from graphql import build_schema, graphql

from connectors.marketplace.sandbox import (
    SandboxBase,
    add_control_routes,
    answer,
    hook_session,
    json_body,
)
from gateway.domain.records import now_iso, parse_iso

STATE_KEY = web.AppKey("shopify_sandbox", object)
SESSION_KEY = web.AppKey("shopify_hooks", aiohttp.ClientSession)
SCHEMA = build_schema((Path(__file__).with_name("schema.graphql")).read_text())
QUERY_COST, MUTATION_COST = 10, 10


def gid(kind: str, number: int) -> str:
    return f"gid://shopify/{kind}/{number}"


def number_of(global_id: str) -> int:
    try:
        return int(str(global_id).rsplit("/", 1)[1])
    except (IndexError, ValueError):
        return 0


@dataclass
class Bucket:
    """Shopify's GraphQL cost bucket: `maximum` points, `restore` points a second."""

    maximum: float = 1000.0
    restore: float = 50.0
    available: float = 1000.0
    at: float = field(default_factory=time.monotonic)

    def take(self, cost: float) -> bool:
        now = time.monotonic()
        self.available = min(self.maximum, self.available + (now - self.at) * self.restore)
        self.at = now
        if cost > self.available:
            return False
        self.available -= cost
        return True

    def drain(self, to: float) -> None:
        """Leave `to` points, counting the refill from now (not from the last request)."""
        self.available = to
        self.at = time.monotonic()

    def status(self) -> dict[str, float]:
        return {"maximumAvailable": self.maximum, "currentlyAvailable": int(self.available),
                "restoreRate": self.restore}


@dataclass
class ShopifyState(SandboxBase):
    token: str = ""
    client_secret: str = ""
    bucket: Bucket = field(default_factory=Bucket)
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_id: int = 1000

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def add_order(self, lines: list[dict[str, Any]], address: dict[str, Any] | None = None,
                  **fields: Any) -> dict[str, Any]:
        number = self.new_id()
        now = now_iso()
        items = [{"id": gid("LineItem", self.new_id()), "sku": ln.get("sku"),
                  "name": ln.get("title") or ln.get("sku") or "item",
                  "quantity": int(ln["quantity"])} for ln in lines]
        fo = {"id": gid("FulfillmentOrder", self.new_id()), "status": "OPEN",
              "lineItems": [{"id": gid("FulfillmentOrderLineItem", self.new_id()),
                             "lineItem": item, "totalQuantity": item["quantity"],
                             "remainingQuantity": item["quantity"]} for item in items]}
        order = {"id": gid("Order", number), "name": f"#{number}", "createdAt": now,
                 "updatedAt": now, "cancelledAt": None, "closed": False,
                 "sourceIdentifier": fields.get("sourceIdentifier"),
                 "sourceName": fields.get("sourceName"), "note": fields.get("note"),
                 "shippingAddress": address or {"name": "Ann Buyer", "address1": "1 Main St",
                                                "city": "Austin", "zip": "78701",
                                                "provinceCode": "TX", "countryCodeV2": "US"},
                 "lineItems": items, "fulfillmentOrders": [fo], "fulfillments": []}
        self.orders[number] = order
        return order

    def order(self, global_id: str) -> dict[str, Any] | None:
        return self.orders.get(number_of(global_id)) if "/Order/" in str(global_id) else None

    def touch(self, order: dict[str, Any]) -> None:
        order["updatedAt"] = now_iso()

    def fulfil(self, order: dict[str, Any], wanted: list[tuple[str, int]],
               tracking: dict[str, Any]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """wanted: (fulfillment order line item id, quantity). Shopify's checks as userErrors."""
        items = {i["id"]: i for fo in order["fulfillmentOrders"] for i in fo["lineItems"]}
        for item_id, quantity in wanted:
            item = items.get(item_id)
            if item is None:
                return None, [{"field": ["fulfillment"], "message":
                               f"Fulfillment order line item {item_id} does not exist."}]
            if quantity > item["remainingQuantity"] or quantity <= 0:
                return None, [{"field": ["fulfillment"], "message":
                               "Invalid fulfillment order line item quantity requested."}]
        if tracking.get("number") and tracking.get("numbers"):
            return None, [{"field": ["fulfillment", "trackingInfo"],
                           "message": "Use either number or numbers, not both."}]
        for item_id, quantity in wanted:
            items[item_id]["remainingQuantity"] -= quantity
        for fo in order["fulfillmentOrders"]:
            if all(i["remainingQuantity"] == 0 for i in fo["lineItems"]):
                fo["status"] = "CLOSED"
        numbers = tracking.get("numbers") or ([tracking["number"]] if tracking.get("number")
                                              else [])
        urls = tracking.get("urls") or ([tracking["url"]] if tracking.get("url") else [])
        now = now_iso()
        fulfillment = {
            "id": gid("Fulfillment", self.new_id()), "status": "SUCCESS", "createdAt": now,
            "updatedAt": now,
            "trackingInfo": [{"company": tracking.get("company"), "number": n,
                              "url": urls[i] if i < len(urls) else None}
                             for i, n in enumerate(numbers)],
            "fulfillmentLineItems": [{"id": gid("FulfillmentLineItem", self.new_id()),
                                      "lineItem": items[i]["lineItem"], "quantity": q,
                                      "_fo_item": i} for i, q in wanted]}
        order["fulfillments"].append(fulfillment)
        self.touch(order)
        return fulfillment, []

    def cancel_fulfillment(self, global_id: str) -> tuple[dict[str, Any] | None,
                                                         list[dict[str, Any]]]:
        for order in self.orders.values():
            for f in order["fulfillments"]:
                if f["id"] != global_id:
                    continue
                if f["status"] == "CANCELLED":
                    return f, [{"field": ["id"], "message": "Fulfillment is already cancelled."}]
                f["status"], f["updatedAt"] = "CANCELLED", now_iso()
                items = {i["id"]: i for fo in order["fulfillmentOrders"] for i in fo["lineItems"]}
                for line in f["fulfillmentLineItems"]:  # quantities go back to an open FO
                    items[line["_fo_item"]]["remainingQuantity"] += line["quantity"]
                for fo in order["fulfillmentOrders"]:
                    if any(i["remainingQuantity"] for i in fo["lineItems"]):
                        fo["status"] = "OPEN"
                self.touch(order)
                return f, []
        return None, [{"field": ["id"], "message": "Fulfillment does not exist."}]


def display_status(order: dict[str, Any]) -> str:
    remaining = sum(i["remainingQuantity"] for fo in order["fulfillmentOrders"]
                    for i in fo["lineItems"])
    total = sum(i["quantity"] for i in order["lineItems"])
    if remaining == 0:
        return "FULFILLED"
    return "UNFULFILLED" if remaining == total else "PARTIALLY_FULFILLED"


def _connection(items: list[Any], first: int | None = None, after: str | None = None
                ) -> dict[str, Any]:
    start = int(base64.b64decode(after).decode()) if after else 0
    page = items[start:start + (first or 50)]
    end = start + len(page)
    return {"nodes": page, "pageInfo": {"hasNextPage": end < len(items),
                                        "endCursor": base64.b64encode(str(end).encode()).decode()
                                        if page else None}}


def _view(order: dict[str, Any]) -> dict[str, Any]:
    """An order as the resolvers see it: connections as callables taking their arguments."""
    return {**order, "displayFulfillmentStatus": display_status(order),
            "lineItems": lambda info, first=None, after=None: _connection(
                order["lineItems"], first, after),
            "fulfillmentOrders": lambda info, first=None, after=None: _connection(
                [_fo_view(fo) for fo in order["fulfillmentOrders"]], first, after),
            "fulfillments": lambda info, first=None: [_fulfillment_view(f) for f in
                                                      order["fulfillments"][:first or 50]]}


def _fo_view(fo: dict[str, Any]) -> dict[str, Any]:
    return {**fo, "lineItems": lambda info, first=None, after=None: _connection(
        fo["lineItems"], first, after)}


def _fulfillment_view(f: dict[str, Any]) -> dict[str, Any]:
    return {**f, "trackingInfo": lambda info, first=None: f["trackingInfo"][:first or 10],
            "fulfillmentLineItems": lambda info, first=None, after=None: _connection(
                f["fulfillmentLineItems"], first, after)}


def _matches(order: dict[str, Any], query: str | None) -> bool:
    """Shopify's search syntax, the part the connector uses: `updated_at:>=X AND ...`."""
    for term in (query or "").split(" AND "):
        name, _, condition = term.strip().partition(":")
        if name != "updated_at" or not condition:
            continue
        op = next(o for o in (">=", "<=", ">", "<", "") if condition.startswith(o))
        value = parse_iso(condition[len(op):].strip("'\""))
        at = parse_iso(order["updatedAt"])
        if not {">=": at >= value, "<=": at <= value, ">": at > value, "<": at < value,
                "": at == value}[op]:
            return False
    return True


def _root(state: ShopifyState, request: web.Request) -> dict[str, Any]:
    def orders(info: Any, first: int | None = None, after: str | None = None,
               query: str | None = None, sortKey: str | None = None,
               reverse: bool = False) -> dict[str, Any]:
        found = [o for o in state.orders.values() if _matches(o, query)]
        found.sort(key=lambda o: (o["updatedAt"], o["id"]), reverse=reverse)
        return _connection([_view(o) for o in found], min(first or 50, 250), after)

    def order(info: Any, id: str) -> dict[str, Any] | None:
        found = state.order(id)
        return _view(found) if found else None

    def order_create(info: Any, order: dict[str, Any], options: Any = None) -> dict[str, Any]:
        lines = order.get("lineItems") or []
        if not lines:
            return {"order": None, "userErrors": [{"field": ["order", "lineItems"],
                                                   "message": "Line items are required."}]}
        a = order.get("shippingAddress") or {}
        address = {"name": " ".join(x for x in (a.get("firstName"), a.get("lastName")) if x),
                   "company": a.get("company"), "address1": a.get("address1"),
                   "address2": a.get("address2"), "city": a.get("city"),
                   "provinceCode": a.get("provinceCode"), "zip": a.get("zip"),
                   "countryCodeV2": a.get("countryCode"), "phone": a.get("phone")}
        made = state.add_order(lines, address, sourceIdentifier=order.get("sourceIdentifier"),
                               sourceName=order.get("sourceName"), note=order.get("note"))
        _hook(request, "orders/create", made)
        return {"order": _view(made), "userErrors": []}

    def order_cancel(info: Any, orderId: str, reason: str, refund: bool, restock: bool,
                     **rest: Any) -> dict[str, Any]:
        found = state.order(orderId)
        if found is None:
            return {"job": None, "orderCancelUserErrors": [
                {"field": ["orderId"], "message": "Order does not exist.", "code": "NOT_FOUND"}]}
        found["cancelledAt"] = found["cancelledAt"] or now_iso()
        state.touch(found)
        _hook(request, "orders/cancelled", found)
        return {"job": {"id": gid("Job", state.new_id()), "done": True},
                "orderCancelUserErrors": []}

    def fulfillment_create(info: Any, fulfillment: dict[str, Any],
                           message: str | None = None) -> dict[str, Any]:
        groups = fulfillment["lineItemsByFulfillmentOrder"]
        owner = next((o for o in state.orders.values() for fo in o["fulfillmentOrders"]
                      if fo["id"] == groups[0]["fulfillmentOrderId"]), None) if groups else None
        if owner is None:
            return {"fulfillment": None, "userErrors": [
                {"field": ["fulfillment"], "message": "Fulfillment order does not exist."}]}
        wanted = []
        for group in groups:
            fo = next((f for f in owner["fulfillmentOrders"]
                       if f["id"] == group["fulfillmentOrderId"]), None)
            if fo is None:
                return {"fulfillment": None, "userErrors": [{"field": ["fulfillment"], "message":
                        "All fulfillment orders must belong to the same order."}]}
            lines = group.get("fulfillmentOrderLineItems")
            wanted += [(ln["id"], ln["quantity"]) for ln in lines] if lines else [
                (i["id"], i["remainingQuantity"]) for i in fo["lineItems"]
                if i["remainingQuantity"]]
        made, errors = state.fulfil(owner, wanted, fulfillment.get("trackingInfo") or {})
        if made is not None:
            _hook(request, "fulfillments/create", made, order=owner)
        return {"fulfillment": _fulfillment_view(made) if made else None, "userErrors": errors}

    def fulfillment_cancel(info: Any, id: str) -> dict[str, Any]:
        made, errors = state.cancel_fulfillment(id)
        if made is not None and not errors:
            owner = next(o for o in state.orders.values() if made in o["fulfillments"])
            _hook(request, "fulfillments/update", made, order=owner)
        return {"fulfillment": _fulfillment_view(made) if made else None, "userErrors": errors}

    return {"orders": orders, "order": order, "orderCreate": order_create,
            "orderCancel": order_cancel, "fulfillmentCreate": fulfillment_create,
            "fulfillmentCancel": fulfillment_cancel}


def _hook(request: web.Request, topic: str, resource: dict[str, Any],
          order: dict[str, Any] | None = None) -> None:
    """Shopify's webhook body is the REST shape; the connector reads only the ids from it."""
    state = state_of(request.app)
    if topic.startswith("fulfillments/"):
        assert order is not None
        body = {"id": number_of(resource["id"]), "order_id": number_of(order["id"]),
                "status": resource["status"].lower(),
                "admin_graphql_api_id": resource["id"]}
    else:
        body = {"id": number_of(resource["id"]), "name": resource["name"],
                "admin_graphql_api_id": resource["id"],
                "updated_at": resource["updatedAt"]}
    raw = orjson.dumps(body)
    digest = base64.b64encode(hmac.new(state.client_secret.encode(), raw,
                                       hashlib.sha256).digest()).decode()
    state.send_hook(request.app.get(SESSION_KEY), raw, {
        "X-Shopify-Topic": topic, "X-Shopify-Hmac-Sha256": digest,
        "X-Shopify-Shop-Domain": "sandbox.myshopify.com",
        "X-Shopify-Webhook-Id": str(uuid.uuid4()), "X-Shopify-API-Version": "2025-01"})


def state_of(app: web.Application) -> ShopifyState:
    return app[STATE_KEY]  # type: ignore[return-value]


async def graphql_endpoint(request: web.Request) -> web.Response:
    state = state_of(request.app)
    entry = {"method": request.method, "path": request.path, "at": time.time(),
             "status": 200, "operation": None}
    state.requests.append(entry)
    if request.headers.get("X-Shopify-Access-Token") != state.token:
        entry["status"] = 401
        return answer({"errors": "[API] Invalid API key or access token (unrecognized login or"
                                 " wrong password)"}, 401)
    fault = state.fault_for(request)
    if fault is not None and not fault.after:
        entry["status"] = fault.status
        return answer({"errors": "Internal Server Error"}, fault.status)
    body = await json_body(request)
    query = str(body.get("query") or "")
    entry["operation"] = query.split("(")[0].split("{")[0].strip()
    cost = MUTATION_COST if query.lstrip().startswith("mutation") else QUERY_COST
    if not state.bucket.take(cost):
        entry["status"] = "THROTTLED"
        return answer({"errors": [{"message": "Throttled", "extensions": {
            "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
            "extensions": {"cost": {"requestedQueryCost": cost, "actualQueryCost": None,
                                    "throttleStatus": state.bucket.status()}}})
    result = await graphql(SCHEMA, query, root_value=_root(state, request),
                           variable_values=body.get("variables") or {})
    payload: dict[str, Any] = {"extensions": {"cost": {
        "requestedQueryCost": cost, "actualQueryCost": cost,
        "throttleStatus": state.bucket.status()}}}
    if result.errors:
        payload["errors"] = [{"message": e.message,
                              "locations": [vars(loc) for loc in e.locations or []]}
                             for e in result.errors]
    payload["data"] = result.data
    if fault is not None:
        entry["status"] = fault.status
        return answer({"errors": "Internal Server Error"}, fault.status)
    return answer(payload)


# control routes

def _control_order(request: web.Request) -> tuple[ShopifyState, dict[str, Any]]:
    state = state_of(request.app)
    order = state.orders.get(int(request.match_info["number"]))
    if order is None:
        raise web.HTTPNotFound(text="no such order")
    return state, order


async def control_add_order(request: web.Request) -> web.Response:
    """A customer orders in this store: {lines: [{sku, quantity}], shipping_address}."""
    state = state_of(request.app)
    body = await json_body(request)
    order = state.add_order(body["lines"], body.get("shipping_address"))
    _hook(request, "orders/create", order)
    return answer(order, 201)


async def control_fulfil(request: web.Request) -> web.Response:
    """The merchant fulfils: {items: [{sku, quantity}], numbers: [...], company, url}."""
    state, order = _control_order(request)
    body = await json_body(request)
    by_sku = {i["lineItem"]["sku"]: i["id"] for fo in order["fulfillmentOrders"]
              for i in fo["lineItems"]}
    made, errors = state.fulfil(order, [(by_sku[i["sku"]], int(i["quantity"]))
                                        for i in body["items"]],
                                {"company": body.get("company", "UPS"),
                                 "numbers": body.get("numbers") or [],
                                 "urls": [body["url"]] if body.get("url") else []})
    if errors:
        return answer({"userErrors": errors}, 400)
    assert made is not None
    _hook(request, "fulfillments/create", made, order=order)
    return answer(made, 201)


async def control_cancel_fulfillment(request: web.Request) -> web.Response:
    state = state_of(request.app)
    made, errors = state.cancel_fulfillment(gid("Fulfillment", int(request.match_info["number"])))
    if errors:
        return answer({"userErrors": errors}, 400)
    assert made is not None
    owner = next(o for o in state.orders.values() if made in o["fulfillments"])
    _hook(request, "fulfillments/update", made, order=owner)
    return answer(made)


async def control_cancel_order(request: web.Request) -> web.Response:
    state, order = _control_order(request)
    order["cancelledAt"] = now_iso()
    state.touch(order)
    _hook(request, "orders/cancelled", order)
    return answer(order)


async def control_state(request: web.Request) -> web.Response:
    state = state_of(request.app)
    return answer({"orders": {str(k): {**o, "displayFulfillmentStatus": display_status(o)}
                              for k, o in state.orders.items()},
                   "hooks_sent": state.hooks_sent, "bucket": state.bucket.status()})


def create_app(token: str, client_secret: str, api_version: str = "2025-01",
               bucket: Bucket | None = None) -> web.Application:
    app = web.Application()
    app[STATE_KEY] = ShopifyState(token=token, client_secret=client_secret,
                                  bucket=bucket or Bucket())
    hook_session(app, SESSION_KEY)
    add_control_routes(app, STATE_KEY)
    r = app.router
    r.add_post(f"/admin/api/{api_version}/graphql.json", graphql_endpoint)
    r.add_post("/_sandbox/orders", control_add_order)
    r.add_post("/_sandbox/orders/{number}/fulfill", control_fulfil)
    r.add_post("/_sandbox/orders/{number}/cancel", control_cancel_order)
    r.add_post("/_sandbox/fulfillments/{number}/cancel", control_cancel_fulfillment)
    r.add_get("/_sandbox/state", control_state)
    return app
