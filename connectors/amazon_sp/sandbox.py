"""An Amazon Selling Partner API stand-in for FBA inbound, faithful to the subset the connector
uses (../shared/partners/amazon.md), and scriptable as Amazon's own static sandbox is not: a
shipment advances through its statuses and is received in parts over (simulated) days.

- Login with Amazon: `POST /auth/o2/token` (form, refresh-token grant) answers a token that
  lasts `token_seconds`; `/_sandbox/tokens/expire` ends every token issued. A call with a
  missing, unknown or expired token is 403 `Unauthorized`, as Amazon answers it.
- getShipments: `MarketplaceId` and `QueryType` required; SHIPMENT (`ShipmentStatusList`,
  `ShipmentIdList`, both: AND), DATE_RANGE (`LastUpdatedAfter` and `LastUpdatedBefore`, both
  required, inclusive; an end in the future is refused: UNCONFIRMED as Amazon's rule, the
  connector keeps its end a couple of minutes back), NEXT_TOKEN (only the token and the
  marketplace: a call that repeats the filters with it gets page one again, Amazon's trap).
  Pages of `page_size`; the last page carries a token too, and it leads to an empty page.
- getShipmentItemsByShipmentId: at most 200 items, with a token it will not take itself;
  getShipmentItems with NEXT_TOKEN continues.
- A token bucket per operation (rate, burst): past it 429 `QuotaExceeded` without a rate
  header; other answers carry `x-amzn-RateLimit-Limit` and `x-amzn-RequestId`.

Run standalone: fulfillment-gateway sandbox amazon_sp [--port 8087]
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from connectors.amazon_sp.client import ITEMS, ITEMS_BY_SHIPMENT, ITEMS_CUT, SHIPMENTS
from connectors.marketplace.sandbox import SandboxBase, add_control_routes, answer, json_body
from gateway.domain.records import parse_iso, utc_iso

STATE_KEY = web.AppKey("amazon_sp_sandbox", object)
STATUSES = ("WORKING", "READY_TO_SHIP", "SHIPPED", "IN_TRANSIT", "DELIVERED", "CHECKED_IN",
            "RECEIVING", "CLOSED", "CANCELLED", "DELETED", "ERROR")


@dataclass
class Bucket:
    rate: float
    burst: float
    tokens: float = 0.0
    at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass
class AmazonState(SandboxBase):
    client_id: str = ""
    client_secret: str = ""
    refresh_token: str = ""
    token_seconds: int = 3600
    page_size: int = 50
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expires (monotonic)
    tokens_issued: int = 0
    shipments: dict[str, dict[str, Any]] = field(default_factory=dict)
    items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    updated: dict[str, str] = field(default_factory=dict)  # shipment -> last updated (ISO)
    next_tokens: dict[str, tuple[str, Any]] = field(default_factory=dict)
    loop_next_token: bool = False  # a reported fault: NEXT_TOKEN answers its own token again
    buckets: dict[str, Bucket] = field(default_factory=lambda: {
        SHIPMENTS: Bucket(2, 30), ITEMS_BY_SHIPMENT: Bucket(2, 30), ITEMS: Bucket(2, 30)})

    def touch(self, shipment_id: str, ago_minutes: float = 0.0) -> None:
        """Changed now, or `ago_minutes` before (a change a date range ending a couple of
        minutes before now already takes)."""
        self.updated[shipment_id] = utc_iso(datetime.now(UTC) - timedelta(minutes=ago_minutes))

    def add(self, body: dict[str, Any]) -> dict[str, Any]:
        shipment_id = str(body.get("ShipmentId") or f"FBA15{secrets.token_hex(4).upper()}")
        self.shipments[shipment_id] = {
            "ShipmentId": shipment_id, "ShipmentName": body.get("ShipmentName", shipment_id),
            "ShipFromAddress": body.get("ShipFromAddress") or {
                "Name": "Main warehouse", "AddressLine1": "1 Dock Rd", "City": "Reno",
                "StateOrProvinceCode": "NV", "CountryCode": "US", "PostalCode": "89501"},
            "DestinationFulfillmentCenterId": body.get("DestinationFulfillmentCenterId", "MKC6"),
            "ShipmentStatus": body.get("ShipmentStatus", "WORKING"), "LabelPrepType":
                "SELLER_LABEL", "AreCasesRequired": False, "BoxContentsSource": "FEED"}
        self.items[shipment_id] = [{
            "ShipmentId": shipment_id, "SellerSKU": str(i["SellerSKU"]),
            "FulfillmentNetworkSKU": f"X00{secrets.token_hex(4).upper()}",
            "QuantityShipped": int(i["QuantityShipped"]), "QuantityReceived": 0,
            "QuantityInCase": int(i.get("QuantityInCase", 0))} for i in body.get("items") or []]
        self.touch(shipment_id, float(body.get("ago_minutes") or 0))
        return self.shipments[shipment_id]

    def token_for(self, kind: str, data: Any) -> str:
        token = secrets.token_urlsafe(24)
        self.next_tokens[token] = (kind, data)
        return token


def state_of(app: web.Application) -> AmazonState:
    return app[STATE_KEY]  # type: ignore[return-value]


def _errors(status: int, code: str, message: str, details: str = "",
            headers: dict[str, str] | None = None) -> web.Response:
    return answer({"errors": [{"code": code, "message": message, "details": details}]}, status,
                  headers)


@web.middleware
async def platform(request: web.Request, handler: Any) -> web.StreamResponse:
    state = state_of(request.app)
    if request.path.startswith("/_sandbox") or request.path == "/auth/o2/token":
        return await handler(request)
    operation = request.match_info.route.name or ""
    entry = {"method": request.method, "path": request.path, "operation": operation,
             "query": dict(request.query), "at": time.time(), "status": 200}
    state.requests.append(entry)
    token = request.headers.get("x-amz-access-token", "")
    if state.tokens.get(token, 0) <= time.monotonic():
        entry["status"] = 403
        return _errors(403, "Unauthorized", "Access to requested resource is denied.",
                       "The access token you provided is revoked, malformed or invalid.")
    bucket = state.buckets.get(operation)
    if bucket is not None and not bucket.take():
        entry["status"] = 429
        return _errors(429, "QuotaExceeded", "You exceeded your quota for the requested"
                       " resource.")
    fault = state.fault_for(request)
    if fault is not None:
        entry["status"] = fault.status
        return _errors(fault.status, "InternalFailure", "We encountered an internal error.")
    try:
        response = await handler(request)
    except ValueError as exc:
        response = _errors(400, "InvalidInput", str(exc))
    entry["status"] = response.status
    response.headers["x-amzn-RequestId"] = secrets.token_hex(8)
    if bucket is not None:
        response.headers["x-amzn-RateLimit-Limit"] = f"{bucket.rate:g}"
    return response


async def token(request: web.Request) -> web.Response:
    state = state_of(request.app)
    form = await request.post()
    if form.get("grant_type") != "refresh_token":
        return answer({"error": "unsupported_grant_type",
                       "error_description": "The authorization grant type is not supported"},
                      400)
    if form.get("client_id") != state.client_id or form.get("client_secret") != \
            state.client_secret:
        return answer({"error": "invalid_client",
                       "error_description": "Client authentication failed"}, 401)
    if form.get("refresh_token") != state.refresh_token:
        return answer({"error": "invalid_grant",
                       "error_description": "The request has an invalid grant parameter"}, 400)
    value = f"Atza|{secrets.token_urlsafe(24)}"
    state.tokens[value] = time.monotonic() + state.token_seconds
    state.tokens_issued += 1
    return answer({"access_token": value, "token_type": "bearer",
                   "expires_in": state.token_seconds})


def _page(state: AmazonState, found: list[dict[str, Any]], start: int) -> dict[str, Any]:
    page = found[start:start + state.page_size]
    # Amazon's habit: a token on the last page too, leading to an empty one
    return {"ShipmentData": page, "NextToken": state.token_for(
        "shipments", (found, start + len(page)))} if page else {"ShipmentData": []}


async def get_shipments(request: web.Request) -> web.Response:
    state = state_of(request.app)
    q = request.query
    if not q.get("MarketplaceId"):
        raise ValueError("MarketplaceId is required")
    kind = q.get("QueryType")
    if kind == "NEXT_TOKEN":
        if set(q) - {"QueryType", "NextToken", "MarketplaceId"}:
            # Amazon's trap: the filters again with the token start over at page one
            return answer({"payload": _page(state, _query(state, q, "DATE_RANGE" if
                                                          "LastUpdatedAfter" in q
                                                          else "SHIPMENT"), 0)})
        found = state.next_tokens.get(q.get("NextToken", ""))
        if found is None or found[0] != "shipments":
            raise ValueError("NextToken is invalid or expired")
        shipments, start = found[1]
        payload = _page(state, shipments, start)
        if state.loop_next_token and payload.get("NextToken"):
            payload["NextToken"] = q["NextToken"]
        return answer({"payload": payload})
    if kind not in ("SHIPMENT", "DATE_RANGE"):
        raise ValueError("QueryType must be SHIPMENT, DATE_RANGE or NEXT_TOKEN")
    return answer({"payload": _page(state, _query(state, q, kind), 0)})


def _query(state: AmazonState, q: Any, kind: str) -> list[dict[str, Any]]:
    if kind == "DATE_RANGE":
        if not (q.get("LastUpdatedAfter") and q.get("LastUpdatedBefore")):
            raise ValueError("LastUpdatedAfter and LastUpdatedBefore are both required")
        after, before = parse_iso(q["LastUpdatedAfter"]), parse_iso(q["LastUpdatedBefore"])
        if before > datetime.now(UTC) + timedelta(seconds=1):
            raise ValueError("LastUpdatedBefore cannot be in the future")
        ids = [i for i, at in state.updated.items() if after <= parse_iso(at) <= before]
    else:
        statuses = set(filter(None, q.get("ShipmentStatusList", "").split(",")))
        wanted = set(filter(None, q.get("ShipmentIdList", "").split(",")))
        if not statuses and not wanted:
            raise ValueError("ShipmentStatusList or ShipmentIdList is required")
        ids = [i for i, s in state.shipments.items()
               if (not statuses or s["ShipmentStatus"] in statuses)
               and (not wanted or i in wanted)]
    return [state.shipments[i] for i in sorted(ids)]


async def items_by_shipment(request: web.Request) -> web.Response:
    state = state_of(request.app)
    shipment_id = request.match_info["shipment_id"]
    if "NextToken" in request.query:
        raise ValueError("NextToken is not accepted by this operation")
    items = state.items.get(shipment_id)
    if items is None:
        return _errors(404, "NotFound", f"Shipment {shipment_id} not found")
    payload: dict[str, Any] = {"ItemData": items[:ITEMS_CUT]}
    if len(items) > ITEMS_CUT:
        payload["NextToken"] = state.token_for("items", (items, ITEMS_CUT))
    return answer({"payload": payload})


async def shipment_items(request: web.Request) -> web.Response:
    state = state_of(request.app)
    q = request.query
    if not q.get("MarketplaceId") or q.get("QueryType") != "NEXT_TOKEN":
        raise ValueError("this sandbox plays getShipmentItems with QueryType NEXT_TOKEN only")
    found = state.next_tokens.get(q.get("NextToken", ""))
    if found is None or found[0] != "items":
        raise ValueError("NextToken is invalid or expired")
    items, start = found[1]
    page = items[start:start + ITEMS_CUT]
    payload: dict[str, Any] = {"ItemData": page}
    if start + len(page) < len(items):
        payload["NextToken"] = state.token_for("items", (items, start + len(page)))
    return answer({"payload": payload})


# control routes

async def control_add(request: web.Request) -> web.Response:
    return answer(state_of(request.app).add(await json_body(request)), 201)


def _shipment(request: web.Request) -> tuple[AmazonState, str]:
    state = state_of(request.app)
    shipment_id = request.match_info["shipment_id"]
    if shipment_id not in state.shipments:
        raise web.HTTPNotFound(text="no such shipment")
    return state, shipment_id


async def control_status(request: web.Request) -> web.Response:
    state, shipment_id = _shipment(request)
    body = await json_body(request)
    status = body["status"]
    if status not in STATUSES:
        raise web.HTTPBadRequest(text=f"status: one of {', '.join(STATUSES)}")
    state.shipments[shipment_id]["ShipmentStatus"] = status
    state.touch(shipment_id, float(body.get("ago_minutes") or 0))
    return answer(state.shipments[shipment_id])


async def control_receive(request: web.Request) -> web.Response:
    """Amazon scans more units in: {SKU: units} (an unplanned SKU becomes an item; negative
    units: Amazon's count corrected down); "ago_minutes": when."""
    state, shipment_id = _shipment(request)
    body = dict(await json_body(request))
    ago = float(body.pop("ago_minutes", 0) or 0)
    for sku, units in body.items():
        item = next((i for i in state.items[shipment_id] if i["SellerSKU"] == sku), None)
        if item is None:
            item = {"ShipmentId": shipment_id, "SellerSKU": sku, "FulfillmentNetworkSKU": "",
                    "QuantityShipped": 0, "QuantityReceived": 0, "QuantityInCase": 0}
            state.items[shipment_id].append(item)
        item["QuantityReceived"] += int(units)
    state.touch(shipment_id, ago)
    return answer(state.items[shipment_id])


async def control_expire(request: web.Request) -> web.Response:
    state = state_of(request.app)
    state.tokens = dict.fromkeys(state.tokens, 0.0)
    return answer({"expired": len(state.tokens)})


async def control_throttle(request: web.Request) -> web.Response:
    state = state_of(request.app)
    body = await json_body(request)
    state.buckets[body["operation"]] = Bucket(float(body["rate"]), float(body["burst"]))
    return answer({"operation": body["operation"]})


async def control_paging(request: web.Request) -> web.Response:
    """{"loop_next_token": true}: play the looping next token some sellers have reported."""
    state = state_of(request.app)
    state.loop_next_token = bool((await json_body(request)).get("loop_next_token"))
    return answer({"loop_next_token": state.loop_next_token})


async def control_state(request: web.Request) -> web.Response:
    state = state_of(request.app)
    return answer({"shipments": state.shipments, "items": state.items,
                   "tokens_issued": state.tokens_issued})


def create_app(client_id: str, client_secret: str, refresh_token: str,
               token_seconds: int = 3600, page_size: int = 50) -> web.Application:
    app = web.Application(middlewares=[platform])
    app[STATE_KEY] = AmazonState(client_id=client_id, client_secret=client_secret,
                                 refresh_token=refresh_token, token_seconds=token_seconds,
                                 page_size=page_size)
    add_control_routes(app, STATE_KEY)
    r = app.router
    r.add_post("/auth/o2/token", token)
    r.add_get("/fba/inbound/v0/shipments", get_shipments, name=SHIPMENTS)
    r.add_get("/fba/inbound/v0/shipments/{shipment_id}/items", items_by_shipment,
              name=ITEMS_BY_SHIPMENT)
    r.add_get("/fba/inbound/v0/shipmentItems", shipment_items, name=ITEMS)
    r.add_post("/_sandbox/shipments", control_add)
    r.add_post("/_sandbox/shipments/{shipment_id}/status", control_status)
    r.add_post("/_sandbox/shipments/{shipment_id}/receive", control_receive)
    r.add_post("/_sandbox/tokens/expire", control_expire)
    r.add_post("/_sandbox/throttle", control_throttle)
    r.add_post("/_sandbox/paging", control_paging)
    r.add_get("/_sandbox/state", control_state)
    return app
