"""A ShipStation v1 stand-in: the API subset the connector uses, and a control surface.

Faithful to ../shared/partners/shipstation.md: Basic auth, Pacific timestamps without offset,
`{shipments|orders|fulfillments, total, page, pages}` paging (pageSize <= 500), the 40/min
fixed-window limit with X-Rate-Limit-Limit/Remaining/Reset (a countdown) and 429s, thin
webhooks carrying only a resource_url, split child orders (`-1`, `-2` numbers, `parentId`),
merged orders (`mergedIds`), voided labels (no webhook) and relabels (a new shipmentId).

Scripting lives under /_sandbox/ (no auth, no rate limit): create, split, merge, ship, mark
shipped, void, relabel, set the rate limit, fail the next requests to a path (any status:
429 with a chosen Reset, 5xx, 400 with a message; optionally after a delay, which makes a
time-out; status 0 does the work at once and answers late), read the request log (with POST bodies).
Run standalone: fulfillment-gateway sandbox shipstation [--port 8081]
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import math
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from connectors.shipstation.pacific import pacific_stamp, pacific_to_utc

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 100
UPDATABLE_STATUSES = {"awaiting_payment", "awaiting_shipment", "pending_fulfillment", "on_hold"}
STATE_KEY = web.AppKey("shipstation_sandbox_state", object)


@dataclass
class Failure:
    remaining: int
    status: int
    message: str
    delay_seconds: float
    path_prefix: str
    reset_seconds: int | None = None  # for a 429: the X-Rate-Limit-Reset it carries


class SandboxState:
    def __init__(self, api_key: str, api_secret: str, rate_limit: int = 40,
                 window_seconds: float = 60.0) -> None:
        token = base64.b64encode(f"{api_key}:{api_secret}".encode()).decode()
        self.expected_auth = f"Basic {token}"
        self.rate_limit = rate_limit
        self.window_seconds = window_seconds
        self._window_start = time.monotonic()
        self._window_count = 0
        self.orders: dict[int, dict[str, Any]] = {}
        self._order_by_key: dict[str, int] = {}  # orderKey is unique: createorder upserts by it
        self.shipments: dict[int, dict[str, Any]] = {}
        self.fulfillments: dict[int, dict[str, Any]] = {}
        self.webhooks: dict[int, dict[str, Any]] = {}
        self.batches: dict[int, list[int]] = {}
        self.failures: list[Failure] = []
        self.requests: list[dict[str, Any]] = []
        self.deliveries: list[dict[str, Any]] = []
        self._order_ids = itertools.count(100001)
        self._item_ids = itertools.count(200001)
        self._shipment_ids = itertools.count(500001)
        self._fulfillment_ids = itertools.count(700001)
        self._batch_ids = itertools.count(900001)
        self._webhook_ids = itertools.count(1)

    # rate limit: a fixed window per key, as ShipStation documents it

    def take_budget(self) -> tuple[bool, int, int]:
        now = time.monotonic()
        if now - self._window_start >= self.window_seconds:
            self._window_start, self._window_count = now, 0
        reset = max(1, math.ceil(self._window_start + self.window_seconds - now))
        if self._window_count >= self.rate_limit:
            return False, 0, reset
        self._window_count += 1
        return True, self.rate_limit - self._window_count, reset

    # orders

    def upsert_order(self, body: dict[str, Any]) -> dict[str, Any]:
        for field in ("orderNumber", "orderStatus"):
            if not body.get(field):
                raise web.HTTPBadRequest(text=_error(f"{field} is required"),
                                         content_type="application/json")
        now = pacific_stamp(datetime.now(UTC))
        key = body.get("orderKey") or secrets.token_hex(16)
        existing = self.orders.get(self._order_by_key.get(key, 0))
        if existing and existing["orderStatus"] not in UPDATABLE_STATUSES:
            raise web.HTTPBadRequest(
                text=_error(f"order {existing['orderId']} is {existing['orderStatus']} and can't"
                            " be updated"), content_type="application/json")
        order = {**(existing or {}), **body, "orderKey": key,
                 "orderId": existing["orderId"] if existing else next(self._order_ids),
                 "createDate": existing["createDate"] if existing else now, "modifyDate": now}
        order["items"] = [{**item, "orderItemId": item.get("orderItemId") or next(self._item_ids)}
                          for item in body.get("items") or []]
        options = {"mergedOrSplit": False, "mergedIds": [], "parentId": None,
                   "storeId": 1, **(order.get("advancedOptions") or {})}
        order["advancedOptions"] = options
        self.orders[order["orderId"]] = order
        self._order_by_key[key] = order["orderId"]
        return order

    def order(self, order_id: int) -> dict[str, Any]:
        try:
            return self.orders[int(order_id)]
        except (KeyError, ValueError):
            raise web.HTTPNotFound(text=_error(f"order {order_id} not found"),
                                   content_type="application/json") from None

    def split(self, order_id: int, parts: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """Legacy split: one child order per part, numbered `-1`, `-2`, pointing at the parent."""
        parent = self.order(order_id)
        children = []
        for i, part in enumerate(parts, start=1):
            items = [self._take_item(parent, p["sku"], int(p["quantity"])) for p in part]
            child = self.upsert_order({
                "orderNumber": f"{parent['orderNumber']}-{i}", "orderStatus": "awaiting_shipment",
                "orderDate": parent.get("orderDate"), "shipTo": parent.get("shipTo"),
                "items": items,
                "advancedOptions": {**parent["advancedOptions"], "mergedOrSplit": True,
                                    "parentId": parent["orderId"], "mergedIds": []}})
            children.append(child)
        parent["advancedOptions"]["mergedOrSplit"] = True
        parent["items"] = [it for it in parent["items"] if it["quantity"] > 0]
        if not parent["items"]:
            parent["orderStatus"] = "cancelled"
        _touch(parent)
        return children

    @staticmethod
    def _take_item(order: dict[str, Any], sku: str, quantity: int) -> dict[str, Any]:
        for item in order["items"]:
            if item.get("sku") == sku and item["quantity"] >= quantity:
                item["quantity"] -= quantity
                return {k: v for k, v in item.items() if k != "orderItemId"} | {
                    "quantity": quantity}
        raise web.HTTPBadRequest(text=_error(f"order {order['orderId']} has no {quantity} x {sku}"),
                                 content_type="application/json")

    def merge(self, order_ids: list[int]) -> dict[str, Any]:
        survivor, *absorbed = [self.order(i) for i in order_ids]
        for other in absorbed:
            survivor["items"] += [dict(it) for it in other["items"]]
            other["orderStatus"] = "cancelled"
            other["advancedOptions"]["mergedOrSplit"] = True
            _touch(other)
        survivor["advancedOptions"]["mergedOrSplit"] = True
        survivor["advancedOptions"]["mergedIds"] = [o["orderId"] for o in absorbed]
        _touch(survivor)
        return survivor

    # labels and fulfillments

    def ship(self, order_id: int, items: list[dict[str, Any]] | None = None,
             carrier: str = "ups", service: str = "ups_ground",
             create_date: str | None = None) -> dict[str, Any]:
        order = self.order(order_id)
        chosen = order["items"] if items is None else [
            next(dict(it, quantity=int(p["quantity"])) for it in order["items"]
                 if it.get("sku") == p["sku"]) for p in items]
        created = create_date or pacific_stamp(datetime.now(UTC))
        shipment_id = next(self._shipment_ids)
        batch = next(self._batch_ids)
        shipment = {
            "shipmentId": shipment_id, "orderId": order["orderId"], "orderKey": order["orderKey"],
            "orderNumber": order["orderNumber"], "userId": "sandbox-user",
            "customerEmail": order.get("customerEmail"), "createDate": created,
            "shipDate": created[:10], "shipmentCost": 7.5, "insuranceCost": 0,
            "trackingNumber": f"1Z{shipment_id:012d}", "isReturnLabel": False,
            "batchNumber": str(batch), "carrierCode": carrier, "serviceCode": service,
            "packageCode": "package", "confirmation": "none", "warehouseId": 1,
            "voided": False, "voidDate": None, "marketplaceNotified": False,
            "notifyErrorMessage": None, "shipTo": order.get("shipTo"),
            "weight": None, "dimensions": None,
            "advancedOptions": dict(order["advancedOptions"]),
            "shipmentItems": [{"orderItemId": it.get("orderItemId"),
                               "lineItemKey": it.get("lineItemKey"), "sku": it.get("sku"),
                               "name": it.get("name") or it.get("sku"),
                               "quantity": it["quantity"]} for it in chosen],
            "labelData": None, "formData": None,
        }
        self.shipments[shipment_id] = shipment
        self.batches[batch] = [shipment_id]
        order["orderStatus"] = "shipped"
        _touch(order)
        return shipment

    def void(self, shipment_id: int) -> dict[str, Any]:
        try:
            shipment = self.shipments[int(shipment_id)]
        except (KeyError, ValueError):
            raise web.HTTPNotFound(text=_error(f"shipment {shipment_id} not found"),
                                   content_type="application/json") from None
        shipment["voided"] = True
        shipment["voidDate"] = pacific_stamp(datetime.now(UTC))
        return shipment

    def mark_shipped(self, order_id: int, tracking: str | None = None) -> dict[str, Any]:
        order = self.order(order_id)
        now = pacific_stamp(datetime.now(UTC))
        fulfillment_id = next(self._fulfillment_ids)
        batch = next(self._batch_ids)
        fulfillment = {
            "fulfillmentId": fulfillment_id, "orderId": order["orderId"],
            "orderNumber": order["orderNumber"], "userId": "sandbox-user",
            "customerEmail": order.get("customerEmail"),
            "trackingNumber": tracking or f"FF{fulfillment_id}", "createDate": now,
            "shipDate": now[:10], "voidDate": None, "deliveryDate": None, "carrierCode": "usps",
            "fulfillmentProviderCode": None, "fulfillmentServiceCode": None,
            "fulfillmentFee": 0, "voidRequested": False, "voided": False,
            "marketplaceNotified": False, "notifyErrorMessage": None,
            "shipTo": order.get("shipTo"), "batchId": batch,
        }
        self.fulfillments[fulfillment_id] = fulfillment
        order["orderStatus"] = "shipped"
        _touch(order)
        return fulfillment

    async def notify(self, event: str, resource_url: str) -> list[dict[str, Any]]:
        """POST the thin body to every subscription for this event, as ShipStation does."""
        results = []
        async with aiohttp.ClientSession() as session:
            for hook in list(self.webhooks.values()):
                if hook["HookType"] != event or not hook["Active"]:
                    continue
                body = {"resource_url": resource_url, "resource_type": event}
                try:
                    async with session.post(hook["Url"], json=body,
                                            timeout=aiohttp.ClientTimeout(total=10)) as resp:
                        status = resp.status
                except (TimeoutError, aiohttp.ClientError) as exc:
                    status = f"error: {type(exc).__name__}"
                record = {"url": hook["Url"].split("?")[0], "event": event,
                          "resource_url": resource_url, "status": status}
                self.deliveries.append(record)
                results.append(record)
        return results


def _touch(order: dict[str, Any]) -> None:
    """An order changed (shipped, split, merged): ShipStation moves its modifyDate."""
    order["modifyDate"] = pacific_stamp(datetime.now(UTC))


def _error(message: str) -> str:
    return orjson.dumps({"Message": "An error has occurred.", "ExceptionMessage": message}).decode()


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def _state(request: web.Request) -> SandboxState:
    return request.app[STATE_KEY]  # type: ignore[return-value]


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise web.HTTPBadRequest(text=_error("body is not JSON"),
                                 content_type="application/json") from None
    if not isinstance(parsed, dict):
        raise web.HTTPBadRequest(text=_error("body must be an object"),
                                 content_type="application/json")
    return parsed


@web.middleware
async def partner_api(request: web.Request, handler: Any) -> web.StreamResponse:
    """Auth, the rate limit and injected failures, for every path but /_sandbox/."""
    if request.path.startswith("/_sandbox/"):
        return await handler(request)
    state = _state(request)
    entry: dict[str, Any] = {"at": time.monotonic(), "method": request.method,
                             "path": request.path, "query": dict(request.query), "status": None}
    if request.method == "POST":
        try:
            entry["json"] = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            entry["json"] = None
    state.requests.append(entry)
    if request.headers.get("Authorization") != state.expected_auth:
        entry["status"] = 401
        return web.Response(status=401, text="401 Unauthorized")
    allowed, remaining, reset = state.take_budget()
    headers = {"X-Rate-Limit-Limit": str(state.rate_limit),
               "X-Rate-Limit-Remaining": str(remaining), "X-Rate-Limit-Reset": str(reset)}
    if not allowed:
        entry["status"] = 429
        return web.Response(status=429, body=orjson.dumps({"message": "Too Many Requests"}),
                            content_type="application/json", headers=headers)
    failure = next((f for f in state.failures
                    if f.remaining > 0 and request.path.startswith(f.path_prefix)), None)
    slow_answer = 0.0
    if failure:
        failure.remaining -= 1
        if not failure.status:  # status 0: done at once, answered late
            slow_answer = failure.delay_seconds
        elif failure.delay_seconds:
            await asyncio.sleep(failure.delay_seconds)
    if failure and failure.status:
        entry["status"] = failure.status
        if failure.status == 429:
            headers["X-Rate-Limit-Remaining"] = "0"
            headers["X-Rate-Limit-Reset"] = str(failure.reset_seconds or reset)
        return web.Response(status=failure.status, text=_error(failure.message),
                            content_type="application/json", headers=headers)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(headers)
        entry["status"] = exc.status
        raise
    response.headers.update(headers)
    entry["status"] = response.status
    if slow_answer:
        await asyncio.sleep(slow_answer)
    return response


def _page(request: web.Request, records: list[dict[str, Any]], key: str) -> web.Response:
    try:
        page = max(1, int(request.query.get("page", 1)))
        size = min(MAX_PAGE_SIZE, max(1, int(request.query.get("pageSize", DEFAULT_PAGE_SIZE))))
    except ValueError:
        raise web.HTTPBadRequest(text=_error("page and pageSize must be numbers"),
                                 content_type="application/json") from None
    pages = max(1, math.ceil(len(records) / size))
    chunk = records[(page - 1) * size: page * size]
    return _json({key: chunk, "total": len(records), "page": page, "pages": pages})


def _in_window(stamp: str | None, start: str | None, end: str | None) -> bool:
    if start is None and end is None:
        return True
    if not stamp:
        return False
    moment = pacific_to_utc(stamp)
    if start and moment < pacific_to_utc(start):
        return False
    return not (end and moment > pacific_to_utc(end))


def _filter(records: list[dict[str, Any]], q: Any, date_fields: dict[str, str],
            exact: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for record in records:
        if any(q.get(param) is not None and str(record.get(field)) != q.get(param)
               for param, field in exact.items()):
            continue
        if not all(_in_window(record.get(field), q.get(f"{prefix}Start"), q.get(f"{prefix}End"))
                   for prefix, field in date_fields.items()):
            continue
        out.append(record)
    return out


async def list_shipments(request: web.Request) -> web.Response:
    state, q = _state(request), request.query
    candidates = list(state.shipments.values())
    if q.get("batchId"):  # a webhook's resource_url: look the batch up, not every label
        candidates = [state.shipments[i] for i in state.batches.get(int(q["batchId"]), [])
                      if i in state.shipments]
    records = _filter(candidates, q,
                      {"createDate": "createDate", "voidDate": "voidDate", "shipDate": "shipDate"},
                      {"orderId": "orderId", "orderNumber": "orderNumber",
                       "trackingNumber": "trackingNumber"})
    records.sort(key=lambda r: (pacific_to_utc(r["createDate"]), r["shipmentId"]),
                 reverse=q.get("sortDir", "ASC").upper() == "DESC")
    if q.get("includeShipmentItems", "false").lower() != "true":
        records = [{**r, "shipmentItems": None} for r in records]
    return _page(request, records, "shipments")


async def list_fulfillments(request: web.Request) -> web.Response:
    state, q = _state(request), request.query
    records = _filter(list(state.fulfillments.values()), q,
                      {"createDate": "createDate", "shipDate": "shipDate"},
                      {"orderId": "orderId", "orderNumber": "orderNumber",
                       "fulfillmentId": "fulfillmentId", "batchId": "batchId"})
    records.sort(key=lambda r: (pacific_to_utc(r["createDate"]), r["fulfillmentId"]))
    return _page(request, [{k: v for k, v in r.items() if k != "batchId"} for r in records],
                 "fulfillments")


async def get_order(request: web.Request) -> web.Response:
    return _json(_state(request).order(request.match_info["order_id"]))


async def list_orders(request: web.Request) -> web.Response:
    state, q = _state(request), request.query
    records = _filter(list(state.orders.values()), q,
                      {"createDate": "createDate", "modifyDate": "modifyDate"},
                      {"orderNumber": "orderNumber", "orderStatus": "orderStatus"})
    return _page(request, records, "orders")


async def create_order(request: web.Request) -> web.Response:
    return _json(_state(request).upsert_order(await _body(request)))


async def void_label(request: web.Request) -> web.Response:
    body = await _body(request)
    _state(request).void(body.get("shipmentId"))
    return _json({"approved": True, "message": "Label voided successfully"})


async def subscribe(request: web.Request) -> web.Response:
    body, state = await _body(request), _state(request)
    if not body.get("target_url") or not body.get("event"):
        raise web.HTTPBadRequest(text=_error("target_url and event are required"),
                                 content_type="application/json")
    hook_id = next(state._webhook_ids)
    state.webhooks[hook_id] = {"WebHookID": hook_id, "StoreID": body.get("store_id"),
                               "HookType": body["event"], "Url": body["target_url"],
                               "Name": body.get("friendly_name"), "Active": True,
                               "IsLabelAPIHook": False}
    return _json({"id": hook_id}, status=201)


async def list_webhooks(request: web.Request) -> web.Response:
    return _json({"webhooks": list(_state(request).webhooks.values())})


async def unsubscribe(request: web.Request) -> web.Response:
    _state(request).webhooks.pop(int(request.match_info["hook_id"]), None)
    return web.Response(status=200)


# the control surface

def _origin(request: web.Request) -> str:
    return str(request.url.origin())


async def control_create_order(request: web.Request) -> web.Response:
    body = await _body(request)
    body.setdefault("orderStatus", "awaiting_shipment")
    body.setdefault("orderDate", pacific_stamp(datetime.now(UTC)))
    return _json(_state(request).upsert_order(body), status=201)


async def control_split(request: web.Request) -> web.Response:
    body = await _body(request)
    children = _state(request).split(request.match_info["order_id"], body.get("parts") or [])
    return _json({"orders": children})


async def control_merge(request: web.Request) -> web.Response:
    body = await _body(request)
    return _json(_state(request).merge([int(i) for i in body.get("orderIds") or []]))


async def control_ship(request: web.Request) -> web.Response:
    body, state = await _body(request), _state(request)
    shipment = state.ship(request.match_info["order_id"], body.get("items"),
                          body.get("carrierCode", "ups"), body.get("serviceCode", "ups_ground"),
                          body.get("createDate"))
    deliveries = []
    if body.get("notify", True):
        store = shipment["advancedOptions"].get("storeId")
        base = f"{_origin(request)}/shipments?storeID={store}&batchId={shipment['batchNumber']}"
        deliveries += await state.notify("SHIP_NOTIFY", base + "&includeShipmentItems=False")
        deliveries += await state.notify("ITEM_SHIP_NOTIFY", base + "&includeShipmentItems=True")
    return _json({"shipment": shipment, "webhooks": deliveries}, status=201)


async def control_relabel(request: web.Request) -> web.Response:
    body, state = await _body(request), _state(request)
    old = state.void(request.match_info["shipment_id"])
    new = state.ship(old["orderId"], [{"sku": it["sku"], "quantity": it["quantity"]}
                                      for it in old["shipmentItems"]])
    deliveries = []
    if body.get("notify", True):
        store = new["advancedOptions"].get("storeId")
        deliveries = await state.notify(
            "SHIP_NOTIFY", f"{_origin(request)}/shipments?storeID={store}"
                           f"&batchId={new['batchNumber']}&includeShipmentItems=False")
    return _json({"voided": old, "shipment": new, "webhooks": deliveries}, status=201)


async def control_void(request: web.Request) -> web.Response:
    return _json(_state(request).void(request.match_info["shipment_id"]))


async def control_mark_shipped(request: web.Request) -> web.Response:
    body, state = await _body(request), _state(request)
    fulfillment = state.mark_shipped(request.match_info["order_id"], body.get("trackingNumber"))
    deliveries = []
    if body.get("notify", True):
        deliveries = await state.notify(
            "FULFILLMENT_SHIPPED",
            f"{_origin(request)}/fulfillments?batchId={fulfillment['batchId']}")
    return _json({"fulfillment": fulfillment, "webhooks": deliveries}, status=201)


async def control_rate_limit(request: web.Request) -> web.Response:
    body, state = await _body(request), _state(request)
    state.rate_limit = int(body.get("limit", state.rate_limit))
    state.window_seconds = float(body.get("window_seconds", state.window_seconds))
    state._window_start, state._window_count = time.monotonic(), int(body.get("used", 0))
    return _json({"limit": state.rate_limit, "window_seconds": state.window_seconds})


async def control_fail(request: web.Request) -> web.Response:
    body = await _body(request)
    _state(request).failures.append(Failure(
        remaining=int(body.get("count", 1)), status=int(body.get("status", 500)),
        message=str(body.get("message", "Sandbox failure")),
        delay_seconds=float(body.get("delay_seconds", 0)),
        path_prefix=str(body.get("path_prefix", "/")),
        reset_seconds=int(body["reset_seconds"]) if "reset_seconds" in body else None))
    return _json({"ok": True})


async def control_requests(request: web.Request) -> web.Response:
    state = _state(request)
    return _json({"requests": [{k: v for k, v in r.items()} for r in state.requests],
                  "deliveries": state.deliveries})


def create_app(api_key: str = "sandbox-key", api_secret: str = "sandbox-secret",
               rate_limit: int = 40, window_seconds: float = 60.0) -> web.Application:
    app = web.Application(middlewares=[partner_api])
    app[STATE_KEY] = SandboxState(api_key, api_secret, rate_limit, window_seconds)
    app.router.add_get("/shipments", list_shipments)
    app.router.add_post("/shipments/voidlabel", void_label)
    app.router.add_get("/fulfillments", list_fulfillments)
    app.router.add_get("/orders", list_orders)
    app.router.add_post("/orders/createorder", create_order)
    app.router.add_get("/orders/{order_id}", get_order)
    app.router.add_post("/webhooks/subscribe", subscribe)
    app.router.add_get("/webhooks", list_webhooks)
    app.router.add_delete("/webhooks/{hook_id}", unsubscribe)
    app.router.add_post("/_sandbox/orders", control_create_order)
    app.router.add_post("/_sandbox/orders/merge", control_merge)
    app.router.add_post("/_sandbox/orders/{order_id}/split", control_split)
    app.router.add_post("/_sandbox/orders/{order_id}/ship", control_ship)
    app.router.add_post("/_sandbox/orders/{order_id}/mark-shipped", control_mark_shipped)
    app.router.add_post("/_sandbox/shipments/{shipment_id}/void", control_void)
    app.router.add_post("/_sandbox/shipments/{shipment_id}/relabel", control_relabel)
    app.router.add_post("/_sandbox/rate-limit", control_rate_limit)
    app.router.add_post("/_sandbox/fail", control_fail)
    app.router.add_get("/_sandbox/requests", control_requests)
    return app


def sandbox_state(app: web.Application) -> SandboxState:
    return app[STATE_KEY]  # type: ignore[return-value]
