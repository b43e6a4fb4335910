"""A WooCommerce site stand-in, faithful to the subset the connector uses (stores.md): the
consumer key and secret as HTTP Basic, query parameters, or a one-legged OAuth 1.0a signature
(checked for real); wc/v3 orders with WooCommerce's
statuses, line items, shipping address and meta_data, listed by modified_after /
modified_before (GMT) with page/per_page and the X-WP-Total / X-WP-TotalPages headers;
products found by SKU; order notes; the Shipment Tracking extension's shipment-trackings
routes, kept as the order's `_wc_shipment_tracking_items` meta (every change moves the
order's date_modified); webhooks carrying the whole order, signed with the webhook secret.

Run standalone: fulfillment-gateway sandbox woocommerce [--port 8085]
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from oauthlib.oauth1 import Client
from oauthlib.oauth1.rfc5849 import signature

from connectors.marketplace.sandbox import (
    SandboxBase,
    add_control_routes,
    answer,
    hook_session,
    json_body,
)
from connectors.woocommerce.normalize import TRACKING_META, meta, timestamp

STATE_KEY = web.AppKey("woocommerce_sandbox", object)
SESSION_KEY = web.AppKey("woocommerce_hooks", aiohttp.ClientSession)
API, TRACKING = "/wp-json/wc/v3", "/wp-json/wc-shipment-tracking/v3"


def _gmt() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass
class WooState(SandboxBase):
    key: str = ""
    secret: str = ""
    webhook_secret: str = ""
    products: dict[int, dict[str, Any]] = field(default_factory=dict)
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    notes: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    next_id: int = 500

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def product(self, sku: str, name: str | None = None) -> dict[str, Any]:
        found = next((p for p in self.products.values() if p["sku"] == sku), None)
        if found is None:
            found = {"id": self.new_id(), "sku": sku, "name": name or sku}
            self.products[found["id"]] = found
        return found

    def add_order(self, body: dict[str, Any]) -> dict[str, Any]:
        order_id = self.new_id()
        items = []
        for line in body.get("line_items") or []:
            product = self.products.get(int(line.get("product_id") or 0))
            if product is None:
                raise ValueError(f"product_id {line.get('product_id')} is not a product")
            items.append({"id": self.new_id(), "product_id": product["id"],
                          "sku": product["sku"], "name": product["name"],
                          "quantity": int(line["quantity"])})
        now = _gmt()
        order = {"id": order_id, "number": str(order_id),
                 "status": body.get("status", "pending"),
                 "customer_id": int(body.get("customer_id", 0)), "currency": "USD",
                 "date_created_gmt": now, "date_modified_gmt": now,
                 "shipping": body.get("shipping") or {},
                 "line_items": items, "customer_note": body.get("customer_note", ""),
                 "meta_data": [{"id": self.new_id(), **m} for m in body.get("meta_data") or []]}
        self.orders[order_id] = order
        self.notes[order_id] = []
        return order

    def touch(self, order: dict[str, Any]) -> None:
        order["date_modified_gmt"] = _gmt()

    def tracking(self, order: dict[str, Any]) -> list[dict[str, Any]]:
        items = meta(order, TRACKING_META)
        if items is None:
            items = []
            order["meta_data"].append({"id": self.new_id(), "key": TRACKING_META,
                                       "value": items})
        return items

    def track(self, order: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("tracking_number"):
            raise ValueError("tracking_number is required")
        provider = body.get("tracking_provider") or ""
        link = body.get("custom_tracking_link") or (
            f"https://track.example/{provider.lower()}/{body['tracking_number']}"
            if provider else "")
        item = {"tracking_id": secrets.token_hex(16), "tracking_provider": provider,
                "custom_tracking_provider": body.get("custom_tracking_provider", ""),
                "custom_tracking_link": body.get("custom_tracking_link", ""),
                "tracking_link": link, "tracking_number": str(body["tracking_number"]),
                "date_shipped": body.get("date_shipped") or _gmt()[:10]}
        if body.get("products_list"):
            item["products_list"] = body["products_list"]
        self.tracking(order).append(item)
        self.touch(order)
        return item


def state_of(app: web.Application) -> WooState:
    return app[STATE_KEY]  # type: ignore[return-value]


def _error(status: int, code: str, message: str,
           headers: dict[str, str] | None = None) -> web.Response:
    return answer({"code": code, "message": message, "data": {"status": status}}, status,
                  headers)


def _oauth_valid(request: web.Request, state: WooState) -> bool:
    """One-legged OAuth 1.0a in the query (WooCommerce over plain HTTP): the consumer key,
    and an HMAC-SHA1 or -SHA256 signature over the method, the URL and the query."""
    q = request.query
    if q.get("oauth_consumer_key") != state.key:
        return False
    params = [(k, v) for k, v in q.items() if k != "oauth_signature"]
    base = signature.signature_base_string(
        request.method, signature.base_string_uri(str(request.url.with_query(None))),
        signature.normalize_parameters(params))
    client = Client(state.key, client_secret=state.secret)
    sign = {"HMAC-SHA1": signature.sign_hmac_sha1_with_client,
            "HMAC-SHA256": signature.sign_hmac_sha256_with_client}.get(
        q.get("oauth_signature_method", ""))
    return sign is not None and hmac.compare_digest(sign(base, client),
                                                    q.get("oauth_signature", ""))


def _authorized(request: web.Request, state: WooState) -> bool:
    if "oauth_signature" in request.query:
        return _oauth_valid(request, state)
    given = request.headers.get("Authorization", "")
    if given.startswith("Basic "):
        try:
            user, _, password = base64.b64decode(given[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
    else:
        user = request.query.get("consumer_key", "")
        password = request.query.get("consumer_secret", "")
    return hmac.compare_digest(user, state.key) and hmac.compare_digest(password, state.secret)


@web.middleware
async def platform(request: web.Request, handler: Any) -> web.StreamResponse:
    state = state_of(request.app)
    if request.path.startswith("/_sandbox"):
        return await handler(request)
    entry = {"method": request.method, "path": request.path,
             "query": {k: v for k, v in request.query.items() if k != "consumer_secret"},
             "at": time.time(), "status": 200}
    state.requests.append(entry)
    if not _authorized(request, state):
        entry["status"] = 401
        return _error(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
    fault = state.fault_for(request)
    if fault is not None and not fault.after:
        entry["status"] = fault.status
        return _error(fault.status, "rest_error", "Too Many Requests" if fault.status == 429
                      else "Internal error", {"Retry-After": "1"} if fault.status == 429
                      else None)
    try:
        response = await handler(request)
    except ValueError as exc:
        response = _error(400, "woocommerce_rest_invalid", str(exc))
    if fault is not None:
        entry["status"] = fault.status
        return _error(fault.status, "rest_error", "Internal error")
    entry["status"] = response.status
    return response


def _order(request: web.Request) -> tuple[WooState, dict[str, Any]]:
    state = state_of(request.app)
    order = state.orders.get(int(request.match_info["order_id"]))
    if order is None:
        raise web.HTTPNotFound(text='{"code":"woocommerce_rest_shop_order_invalid_id",'
                                    '"message":"Invalid ID.","data":{"status":404}}',
                               content_type="application/json")
    return state, order


def _hook(request: web.Request, event: str, order: dict[str, Any]) -> None:
    state = state_of(request.app)
    body = orjson.dumps(order)
    signature = base64.b64encode(hmac.new(state.webhook_secret.encode(), body,
                                          hashlib.sha256).digest()).decode()
    state.send_hook(request.app.get(SESSION_KEY), body, {
        "X-WC-Webhook-Signature": signature, "X-WC-Webhook-Topic": f"order.{event}",
        "X-WC-Webhook-Resource": "order", "X-WC-Webhook-Event": event,
        "X-WC-Webhook-ID": "7", "X-WC-Webhook-Delivery-ID": str(state.new_id()),
        "X-WC-Webhook-Source": "https://sandbox.example/"})


async def list_orders(request: web.Request) -> web.Response:
    state = state_of(request.app)
    q = request.query
    low = timestamp(q.get("modified_after"), "") if q.get("modified_after") else ""
    high = timestamp(q.get("modified_before"), "~") if q.get("modified_before") else "~"
    wanted = set(q["status"].split(",")) if q.get("status") else None
    found = [o for o in state.orders.values()
             if low <= timestamp(o["date_modified_gmt"], "") <= high
             and (wanted is None or o["status"] in wanted)]
    found.sort(key=lambda o: (o["date_modified_gmt"], o["id"]), reverse=q.get("order") == "desc")
    per_page, page = min(int(q.get("per_page", 10)), 100), int(q.get("page", 1))
    pages = max(1, -(-len(found) // per_page))
    return answer(found[(page - 1) * per_page: page * per_page], headers={
        "X-WP-Total": str(len(found)), "X-WP-TotalPages": str(pages)})


async def create_order(request: web.Request) -> web.Response:
    state = state_of(request.app)
    order = state.add_order(await json_body(request))
    _hook(request, "created", order)
    return answer(order, 201)


async def get_order(request: web.Request) -> web.Response:
    _, order = _order(request)
    return answer(order)


async def update_order(request: web.Request) -> web.Response:
    state, order = _order(request)
    body = await json_body(request)
    if "status" in body:
        order["status"] = body["status"]
    state.touch(order)
    _hook(request, "updated", order)
    return answer(order)


async def find_products(request: web.Request) -> web.Response:
    state = state_of(request.app)
    sku = request.query.get("sku")
    return answer([p for p in state.products.values() if sku is None or p["sku"] == sku])


async def list_notes(request: web.Request) -> web.Response:
    state, order = _order(request)
    return answer(state.notes[order["id"]])


async def add_note(request: web.Request) -> web.Response:
    state, order = _order(request)
    body = await json_body(request)
    note = {"id": state.new_id(), "note": body["note"],
            "customer_note": bool(body.get("customer_note")), "date_created_gmt": _gmt()}
    state.notes[order["id"]].append(note)
    state.touch(order)
    return answer(note, 201)


async def delete_note(request: web.Request) -> web.Response:
    state, order = _order(request)
    note_id = int(request.match_info["note_id"])
    notes = state.notes[order["id"]]
    found = next((n for n in notes if n["id"] == note_id), None)
    if found is None:
        raise web.HTTPNotFound()
    notes.remove(found)
    return answer(found)


async def list_tracking(request: web.Request) -> web.Response:
    state, order = _order(request)
    return answer(state.tracking(order))


async def add_tracking(request: web.Request) -> web.Response:
    state, order = _order(request)
    item = state.track(order, await json_body(request))
    _hook(request, "updated", order)
    return answer(item, 201)


async def delete_tracking(request: web.Request) -> web.Response:
    state, order = _order(request)
    items = state.tracking(order)
    found = next((i for i in items if i["tracking_id"] == request.match_info["tracking_id"]),
                 None)
    if found is None:
        raise web.HTTPNotFound()
    items.remove(found)
    state.touch(order)
    _hook(request, "updated", order)
    return answer({"message": "Deleted"})


# control routes

async def control_product(request: web.Request) -> web.Response:
    body = await json_body(request)
    return answer(state_of(request.app).product(body["sku"], body.get("name")), 201)


async def control_order(request: web.Request) -> web.Response:
    """A customer orders: {lines: [{sku, quantity}], shipping, status (processing)}."""
    state = state_of(request.app)
    body = await json_body(request)
    order = state.add_order({
        "status": body.get("status", "processing"),
        "shipping": body.get("shipping") or {"first_name": "Ann", "last_name": "Buyer",
                                             "address_1": "1 Main St", "city": "Austin",
                                             "postcode": "78701", "country": "US"},
        "line_items": [{"product_id": state.product(ln["sku"])["id"],
                        "quantity": ln["quantity"]} for ln in body["lines"]]})
    _hook(request, "created", order)
    return answer(order, 201)


async def control_track(request: web.Request) -> web.Response:
    """The seller adds a tracking item (and, with `complete`, marks the order completed)."""
    state, order = _order(request)
    body = await json_body(request)
    item = state.track(order, body)
    if body.get("complete"):
        order["status"] = "completed"
    _hook(request, "updated", order)
    return answer(item, 201)


async def control_untrack(request: web.Request) -> web.Response:
    return await delete_tracking(request)


async def control_status(request: web.Request) -> web.Response:
    state, order = _order(request)
    order["status"] = (await json_body(request))["status"]
    state.touch(order)
    _hook(request, "updated", order)
    return answer(order)


async def control_state(request: web.Request) -> web.Response:
    state = state_of(request.app)
    return answer({"orders": {str(k): {**o, "notes": state.notes[k]}
                              for k, o in state.orders.items()},
                   "products": list(state.products.values()), "hooks_sent": state.hooks_sent})


def create_app(key: str, secret: str, webhook_secret: str) -> web.Application:
    app = web.Application(middlewares=[platform])
    app[STATE_KEY] = WooState(key=key, secret=secret, webhook_secret=webhook_secret)
    hook_session(app, SESSION_KEY)
    add_control_routes(app, STATE_KEY)
    r = app.router
    r.add_get(f"{API}/orders", list_orders)
    r.add_post(f"{API}/orders", create_order)
    r.add_get(f"{API}/orders/{{order_id}}", get_order)
    r.add_put(f"{API}/orders/{{order_id}}", update_order)
    r.add_get(f"{API}/products", find_products)
    r.add_get(f"{API}/orders/{{order_id}}/notes", list_notes)
    r.add_post(f"{API}/orders/{{order_id}}/notes", add_note)
    r.add_delete(f"{API}/orders/{{order_id}}/notes/{{note_id}}", delete_note)
    r.add_get(f"{TRACKING}/orders/{{order_id}}/shipment-trackings", list_tracking)
    r.add_post(f"{TRACKING}/orders/{{order_id}}/shipment-trackings", add_tracking)
    r.add_delete(f"{TRACKING}/orders/{{order_id}}/shipment-trackings/{{tracking_id}}",
                 delete_tracking)
    r.add_post("/_sandbox/products", control_product)
    r.add_post("/_sandbox/orders", control_order)
    r.add_post("/_sandbox/orders/{order_id}/track", control_track)
    r.add_post("/_sandbox/orders/{order_id}/untrack/{tracking_id}", control_untrack)
    r.add_post("/_sandbox/orders/{order_id}/status", control_status)
    r.add_get("/_sandbox/state", control_state)
    return app
