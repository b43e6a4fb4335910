"""The HTTP API for internal services: bearer tokens, one error shape, cursor pagination."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from gateway import logs
from gateway.connector import Connector, Feed
from gateway.domain.records import (
    FO_STATUSES,
    FulfillmentOrder,
    FulfillmentOrderLine,
    OrderRef,
    PartnerRecord,
    new_id,
    now_iso,
    parse_iso,
    utc_iso,
)
from gateway.errors import (
    BadRequest,
    ClientGone,
    Conflict,
    GatewayError,
    NotFound,
    RequestTimeout,
    Unauthorized,
)
from gateway.intake import read_limited
from gateway.openapi import document
from storage import INBOX, OUTBOX, FeedState, InvalidCursor, NewFulfillmentOrder

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logs.get("gateway.api")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")  # whole value: fullmatch
DEFAULT_LIMIT, MAX_LIMIT = 50, 200
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
GATEWAY_KEY = web.AppKey("gateway", object)


def json_response(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> web.Response:
    response = json_response({"error": {"code": code, "message": message}}, status)
    if headers:
        response.headers.update(headers)
    return response


# RFC 9110: a 401 names the scheme to use
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="fulfillment-gateway"'}


def _check_token(request: web.Request, tokens: tuple[str, ...]) -> None:
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented:
        raise Unauthorized("send Authorization: Bearer <token>")
    if not any(hmac.compare_digest(presented.encode(), t.encode()) for t in tokens):
        raise Unauthorized("bearer token not recognised")


def guard(handler: Handler, tokens: Callable[[], tuple[str, ...]] | None) -> Handler:
    """Wrap one route: its bearer tokens (when `tokens` is given), and the one place errors
    become `{"error": {code, message}}`.

    A wrapper per route rather than an aiohttp middleware: a middleware runs on every
    request, webhooks included, and costs there (measured by bench/intake.py).
    """

    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            if tokens is not None:
                _check_token(request, tokens())
            return await handler(request)
        except Unauthorized as exc:
            return error_response(exc.status, exc.code, exc.message, CHALLENGE)
        except GatewayError as exc:
            response = error_response(exc.status, exc.code, exc.message)
            if isinstance(exc, RequestTimeout | ClientGone):
                response.force_close()  # what is left of that body is not read
            return response
        except InvalidCursor as exc:
            return error_response(400, BadRequest.code, str(exc))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = {404: "not_found", 405: "method_not_allowed",
                    413: "payload_too_large"}.get(exc.status, "http_error")
            return error_response(exc.status, code, exc.reason)
        except Exception:  # noqa: BLE001 - logged with its traceback, never shown to the caller
            log.exception("api.unhandled", path=request.path, method=request.method)
            return error_response(500, "internal_error", "internal error; see the gateway's log")

    return guarded


async def no_route(request: web.Request) -> web.Response:
    """Every path no route serves: 405 where another method would do, else 404."""
    if request.path.startswith("/api/"):  # no token, no hints about what exists
        _check_token(request, _gateway(request).tokens)
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource.canonical == CATCH_ALL:
            continue
        match, methods = await resource.resolve(request)
        if match is None:
            allowed |= methods
    if allowed:
        methods = ", ".join(sorted(allowed))
        return error_response(405, "method_not_allowed",
                              f"{request.method} is not allowed here; use {methods}",
                              {"Allow": methods})
    return error_response(404, "not_found", f"no route for {request.path}")


CATCH_ALL = "/{tail:.*}"


def _gateway(request: web.Request) -> Gateway:
    return request.app[GATEWAY_KEY]  # type: ignore[return-value]


async def _body(request: web.Request) -> bytes:
    server = _gateway(request).config.server
    return await read_limited(request, server.max_body_bytes, server.body_timeout_seconds)


async def _json_body(request: web.Request, optional: bool = False) -> dict[str, Any]:
    raw = await _body(request)
    if optional and not raw:
        return {}
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        raise BadRequest("body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequest(f"limit: a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def _since(request: web.Request) -> str | None:
    since = request.query.get("updated_since") or None
    if since:
        try:
            return utc_iso(parse_iso(since))
        except ValueError:
            raise BadRequest("updated_since: an ISO 8601 timestamp with an offset") from None
    return None


def _only_query(request: web.Request, known: set[str]) -> None:
    unknown = sorted(set(request.query) - known)
    if unknown:
        raise BadRequest(f"unknown query parameter(s): {', '.join(unknown)}")


def _page(items: list[dict[str, Any]], next_cursor: str | None) -> web.Response:
    return json_response({"items": items, "next_cursor": next_cursor})


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and (not isinstance(value, str) or not value or len(value) > 256):
        raise BadRequest(f"{key}: a non-empty string of at most 256 characters")
    return value


def _optional_object(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key, {})
    if not isinstance(value, dict):
        raise BadRequest(f"{key}: must be an object")
    return value


FO_FIELDS = {"id", "channel", "order_number", "lines", "ship_to", "custom_fields", "external_refs"}


def parse_fulfillment_order(body: dict[str, Any],
                            extra_hash: dict[str, Any] | None = None) -> NewFulfillmentOrder:
    unknown = sorted(set(body) - FO_FIELDS)
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}")
    fo_id = body.get("id")
    if fo_id is not None and (not isinstance(fo_id, str) or not _ID.fullmatch(fo_id)):
        raise BadRequest("id: 1-128 characters of letters, digits, '.', '_', ':' or '-'")
    lines = body.get("lines")
    if not isinstance(lines, list) or not lines:
        raise BadRequest("lines: a non-empty list of {sku, quantity}")
    parsed_lines, line_ids = [], set()
    for i, line in enumerate(lines):
        if not isinstance(line, dict) or set(line) - {"sku", "quantity", "line_id"}:
            raise BadRequest(f"lines[{i}]: an object with sku, quantity and optional line_id")
        sku, quantity = line.get("sku"), line.get("quantity")
        if not isinstance(sku, str) or not sku.strip() or len(sku) > 128:
            raise BadRequest(f"lines[{i}].sku: a non-empty string")
        if not isinstance(quantity, int) or isinstance(quantity, bool) or not 0 < quantity <= 10**9:
            raise BadRequest(f"lines[{i}].quantity: a whole number greater than 0")
        line_id = line.get("line_id", str(i + 1))
        if not isinstance(line_id, str) or not _ID.fullmatch(line_id) or line_id in line_ids:
            raise BadRequest(f"lines[{i}].line_id: a unique id string")
        line_ids.add(line_id)
        parsed_lines.append(FulfillmentOrderLine(line_id, sku, quantity))
    order_number = _optional_str(body, "order_number")
    refs = [OrderRef("order_number", order_number)] if order_number else []
    raw_refs = body.get("external_refs", [])
    if not isinstance(raw_refs, list):
        raise BadRequest("external_refs: a list of {kind, value}")
    for i, ref in enumerate(raw_refs):
        if (not isinstance(ref, dict) or ref.get("kind") not in ("order_number", "partner_order_id")
                or not isinstance(ref.get("value"), str) or not ref["value"]):
            raise BadRequest(f"external_refs[{i}]: kind order_number or partner_order_id,"
                             " and a string value")
        refs.append(OrderRef(ref["kind"], ref["value"]))
    canonical = {**{k: v for k, v in body.items() if k != "id"}, **(extra_hash or {})}
    request_hash = hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()
    fo = FulfillmentOrder(id=fo_id or new_id("fo"), seq=0, lines=tuple(parsed_lines),
                          order_number=order_number, channel=_optional_str(body, "channel"),
                          refs=tuple(refs))
    return NewFulfillmentOrder(fo=fo, request_hash=request_hash,
                               ship_to=_optional_object(body, "ship_to"),
                               custom_fields=_optional_object(body, "custom_fields"),
                               created_at=now_iso())


def _check_channel(gw: Gateway, name: str | None) -> None:
    """With channels configured, an FO names one of them: a typo must not skip its push."""
    if gw.config.channels and name is not None and gw.config.channel(name) is None:
        raise BadRequest(f"channel: {name!r} is not a configured channel; known: "
                         + ", ".join(c.name for c in gw.config.channels))


async def _create(gw: Gateway, new: NewFulfillmentOrder) -> web.Response:
    _check_channel(gw, new.fo.channel)
    created = await gw.commands.create_fulfillment_order(new)
    view = await gw.storage.fulfillment_order_view(new.fo.id)
    return json_response(view, 201 if created else 200)


async def create_fulfillment_order(request: web.Request) -> web.Response:
    return await _create(_gateway(request), parse_fulfillment_order(await _json_body(request)))


async def list_channels(request: web.Request) -> web.Response:
    return json_response({"items": [c.describe() for c in _gateway(request).config.channels],
                          "next_cursor": None})


async def create_channel_order(request: web.Request) -> web.Response:
    """Invoice first: an internal service posts an invoiced order; it becomes an FO of this
    channel (pushed as the channel says) and no invoice is requested for it."""
    gw, name = _gateway(request), request.match_info["name"]
    if gw.config.channel(name) is None:
        raise NotFound(f"channel {name} is not configured")
    body = await _json_body(request)
    invoice_id = body.pop("invoice_id", None)
    if not isinstance(invoice_id, str) or not invoice_id or len(invoice_id) > 256:
        raise BadRequest("invoice_id: the invoice's id, a non-empty string")
    if body.get("channel", name) != name:
        raise BadRequest(f"channel: this endpoint creates orders of channel {name!r}")
    new = parse_fulfillment_order({**body, "channel": name}, extra_hash={"invoice_id": invoice_id})
    return await _create(gw, replace(new, flow="invoice_first", invoice_id=invoice_id))


async def get_fulfillment_order(request: web.Request) -> web.Response:
    fo_id = request.match_info["id"]
    view = await _gateway(request).storage.fulfillment_order_view(fo_id)
    if view is None:
        raise NotFound(f"fulfillment order {fo_id} does not exist")
    return json_response(view)


async def list_fulfillment_orders(request: web.Request) -> web.Response:
    status = request.query.get("status") or None
    if status and status not in FO_STATUSES:
        raise BadRequest(f"status: one of {', '.join(FO_STATUSES)}")
    page = await _gateway(request).storage.list_fulfillment_orders(
        status, _since(request), request.query.get("cursor") or None, _limit(request))
    return _page(page.items, page.next_cursor)


async def cancel_fulfillment_order(request: web.Request) -> web.Response:
    gw, fo_id = _gateway(request), request.match_info["id"]
    await gw.commands.cancel_fulfillment_order(fo_id)
    return json_response(await gw.storage.fulfillment_order_view(fo_id))


async def get_shipment(request: web.Request) -> web.Response:
    shipment_id = request.match_info["id"]
    view = await _gateway(request).storage.shipment_view(shipment_id)
    if view is None:
        raise NotFound(f"shipment {shipment_id} does not exist")
    return json_response(view)


async def list_shipments(request: web.Request) -> web.Response:
    page = await _gateway(request).storage.list_shipments(
        request.query.get("fulfillment_order_id") or None, request.query.get("cursor") or None,
        _limit(request))
    return _page(page.items, page.next_cursor)


async def list_unmatched(request: web.Request) -> web.Response:
    page = await _gateway(request).storage.list_unmatched(request.query.get("cursor") or None,
                                                          _limit(request))
    return _page(page.items, page.next_cursor)


async def match_unmatched(request: web.Request) -> web.Response:
    gw, shipment_id = _gateway(request), request.match_info["id"]
    body = await _json_body(request)
    fo_ids = body.get("fulfillment_order_ids")
    if fo_ids is None and isinstance(body.get("fulfillment_order_id"), str):
        fo_ids = [body["fulfillment_order_id"]]
    if (not isinstance(fo_ids, list) or not fo_ids
            or not all(isinstance(i, str) and i for i in fo_ids)):
        raise BadRequest("fulfillment_order_ids: a non-empty list of FO ids")
    view = await gw.storage.shipment_view(shipment_id)
    if view is None:
        raise NotFound(f"shipment {shipment_id} does not exist")
    if view.match_state != "unmatched":
        raise Conflict(f"shipment {shipment_id} is already matched to "
                       f"{', '.join(view.fulfillment_order_ids)}")
    await gw.commands.match_manually(shipment_id, fo_ids)
    return json_response(await gw.storage.shipment_view(shipment_id))


async def unmatch_shipment(request: web.Request) -> web.Response:
    """Undo a manual match: the rules match the shipment again, or it waits unmatched."""
    gw, shipment_id = _gateway(request), request.match_info["id"]
    await gw.commands.unmatch(shipment_id)
    return json_response(await gw.storage.shipment_view(shipment_id))


def _feed_view(connector: Connector, feed: Feed, state: FeedState | None) -> dict[str, Any]:
    return {"name": feed.name, "description": feed.description,
            "enabled": connector.feed_enabled(feed),
            "interval_minutes": connector.feed_interval(feed),
            "cursor": state.cursor if state else None,
            "last_poll_at": state.last_poll_at if state else None,
            "last_result": dict(state.last_result) if state and state.last_poll_at else None,
            "last_error": state.last_error if state else None,
            "last_error_at": state.last_error_at if state else None,
            "running": _leased(state),
            # which process runs it (several replicas on one database: which one)
            "lease_owner": state.owner if _leased(state) else None,
            "lease_until": state.lease_until if _leased(state) else None}


def _leased(state: FeedState | None) -> bool:
    return bool(state and state.owner and state.lease_until and state.lease_until > now_iso())


async def list_connectors(request: web.Request) -> web.Response:
    gw = _gateway(request)
    items = []
    for config in gw.config.connectors:
        connector = gw.connectors.get(config.name)
        item: dict[str, Any] = {"name": config.name, "type": config.type,
                                "enabled": config.enabled}
        if connector is not None:
            states = {s.feed: s for s in await gw.storage.feed_states(config.name)}
            item |= {
                "webhooks": connector.webhooks,
                "feeds": [_feed_view(connector, f, states.get(f.name)) for f in connector.feeds],
                "operations": sorted(connector.declared_operations()
                                     - set(connector.unsupported)),
                "unsupported": dict(connector.unsupported),
                "record_kinds": [{"name": k.name, "writes": sorted(k.writes),
                                  "description": k.description}
                                 for k in connector.record_kinds],
                **connector.status()}
        items.append(item)
    return json_response({"items": items, "next_cursor": None})


async def poll_connector(request: web.Request) -> web.Response:
    _only_query(request, {"feed"})
    return json_response(await _gateway(request).poller.poll(
        request.match_info["name"], request.query.get("feed") or None))


async def list_dead_letters(request: web.Request) -> web.Response:
    page = await _gateway(request).storage.list_dead_letters(request.query.get("cursor") or None,
                                                             _limit(request))
    return _page(page.items, page.next_cursor)


async def replay_dead_letter(request: web.Request) -> web.Response:
    gw, raw = _gateway(request), request.match_info["id"]
    if not await gw.commands.replay_dead_letter(raw):
        raise NotFound(f"dead letter {raw} does not exist")
    return json_response({"id": raw, "status": "replaying"}, 202)


async def discard_dead_letter(request: web.Request) -> web.Response:
    gw, raw = _gateway(request), request.match_info["id"]
    if not await gw.commands.discard_dead_letter(raw):
        raise NotFound(f"dead letter {raw} does not exist")
    return json_response({"id": raw, "status": "discarded"})


# partner records and orders

def _record_view(record: PartnerRecord) -> dict[str, Any]:
    return {"id": record.external_id, "connector": record.source, "kind": record.kind,
            "fields": record.fields, "updated_at": record.updated_at,
            "archived": record.archived}


def _record_kind(gw: Gateway, request: web.Request) -> tuple[str, str]:
    name, kind = request.match_info["name"], request.match_info["kind"]
    connector = gw.connectors.get(name)
    if connector is None:
        raise NotFound(f"no enabled connector {name!r}")
    if connector.record_kind(kind) is None:
        kinds = ", ".join(k.name for k in connector.record_kinds) or "none"
        raise NotFound(f"connector {name!r} keeps no {kind!r} records; its kinds: {kinds}")
    return name, kind


async def list_partner_records(request: web.Request) -> web.Response:
    gw = _gateway(request)
    name, kind = _record_kind(gw, request)
    _only_query(request, {"cursor", "limit", "updated_since"})
    page = await gw.storage.list_partner_records(
        name, kind, _since(request), request.query.get("cursor") or None, _limit(request))
    return _page([_record_view(r) for r in page.items], page.next_cursor)


async def get_partner_record(request: web.Request) -> web.Response:
    gw = _gateway(request)
    name, kind = _record_kind(gw, request)
    record = await gw.storage.partner_record(name, kind, request.match_info["id"])
    if record is None:
        raise NotFound(f"connector {name!r} has no {kind} {request.match_info['id']!r}")
    return json_response(_record_view(record))


async def _write_record(request: web.Request, write: str, external_id: str | None,
                        body: dict[str, Any]) -> web.Response:
    gw = _gateway(request)
    name, kind = _record_kind(gw, request)
    fields = body.get("fields", {})
    if set(body) - {"fields"} or not isinstance(fields, dict) or (write != "archive"
                                                                 and not fields):
        raise BadRequest("body: {\"fields\": {...}}, the partner's fields to write")
    message_id = await gw.commands.write_partner_record(name, kind, write, external_id, fields)
    return json_response({"id": f"outbox-{message_id}", "status": "pending",
                          "operation": f"{write}:{kind}"}, 202)


async def create_partner_record(request: web.Request) -> web.Response:
    return await _write_record(request, "create", None, await _json_body(request))


async def update_partner_record(request: web.Request) -> web.Response:
    return await _write_record(request, "update", request.match_info["id"],
                               await _json_body(request))


async def archive_partner_record(request: web.Request) -> web.Response:
    body = await _json_body(request, optional=True)
    return await _write_record(request, "archive", request.match_info["id"], body)


async def list_partner_orders(request: web.Request) -> web.Response:
    """Orders placed at partners, with the FO each became; `unclaimed=true`: those no
    channel takes (kept, not dropped)."""
    _only_query(request, {"cursor", "limit", "connector", "unclaimed"})
    unclaimed = request.query.get("unclaimed", "false")
    if unclaimed not in ("true", "false"):
        raise BadRequest("unclaimed: true or false")
    page = await _gateway(request).storage.list_partner_orders(
        request.query.get("connector") or None, unclaimed == "true",
        request.query.get("cursor") or None, _limit(request))
    return _page([{"connector": o.order.source, "id": o.order.external_id,
                   "order_number": o.order.order_number, "status": o.order.status,
                   "lines": [{"sku": ln.sku, "quantity": ln.quantity,
                              "partner_line_id": ln.partner_line_id} for ln in o.order.lines],
                   "ship_to": o.order.ship_to, "customer_ref": o.order.customer_ref,
                   "partner_updated_at": o.order.partner_updated_at,
                   "fulfillment_order_id": o.fo_id, "recorded_at": o.recorded_at,
                   "raw": o.order.raw} for o in page.items], page.next_cursor)


async def openapi(request: web.Request) -> web.Response:
    return json_response(document())


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    gw = _gateway(request)
    problem = await gw.storage.probe()  # a write, so a full disk or read-only file shows
    storage_ok = problem is None
    checks = {
        "storage": storage_ok,
        "migrations": storage_ok and await gw.storage.pending_migrations() == 0,
        "scheduler": gw.scheduler_running,
        "worker": gw.worker.running,
        "outbox": gw.dispatcher.running,
    }
    ready = all(checks.values())
    body: dict[str, Any] = {"status": "ready" if ready else "not_ready", "checks": checks}
    if problem is not None:
        body["storage_error"] = problem
    return json_response(body, 200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    gw = _gateway(request)
    stats = await gw.storage.inbox_stats()
    gw.metrics.inbox_depth.set(stats["depth"])
    gw.metrics.inbox_oldest_age.set(stats["oldest_age_seconds"])
    gw.metrics.dead_letters.labels(INBOX).set(stats["dead"])
    outbox = await gw.storage.outbox_stats()
    gw.metrics.outbox_pending.set(outbox["pending"])
    gw.metrics.dead_letters.labels(OUTBOX).set(outbox["dead"])
    gw.metrics.outbox_oldest_pending_age.clear()  # a destination with nothing due has no sample
    for destination, age in outbox["oldest_pending_age_seconds"].items():
        gw.metrics.outbox_oldest_pending_age.labels(destination).set(age)
    gw.metrics.replica.labels(gw.owner).set(1)
    gw.metrics.claims_held.labels(INBOX).set(len(gw.worker.claims.in_hand))
    gw.metrics.claims_held.labels(OUTBOX).set(len(gw.dispatcher.claims.in_hand))
    held = 0
    for connector in gw.connectors:
        for state in await gw.storage.feed_states(connector):
            held += state.owner == gw.owner and _leased(state)
            if state.last_poll_at:
                gw.metrics.feed_last_success.labels(connector, state.feed).set(
                    parse_iso(state.last_poll_at).timestamp())
    gw.metrics.feed_leases_held.set(held)
    return web.Response(body=gw.metrics.render(),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/api/v1/fulfillment-orders", create_fulfillment_order),
    ("GET", "/api/v1/fulfillment-orders", list_fulfillment_orders),
    ("GET", "/api/v1/fulfillment-orders/{id}", get_fulfillment_order),
    ("POST", "/api/v1/fulfillment-orders/{id}/cancel", cancel_fulfillment_order),
    ("GET", "/api/v1/shipments", list_shipments),
    ("GET", "/api/v1/shipments/{id}", get_shipment),
    ("GET", "/api/v1/unmatched-shipments", list_unmatched),
    ("POST", "/api/v1/unmatched-shipments/{id}/match", match_unmatched),
    ("POST", "/api/v1/shipments/{id}/unmatch", unmatch_shipment),
    ("GET", "/api/v1/channels", list_channels),
    ("POST", "/api/v1/channels/{name}/orders", create_channel_order),
    ("GET", "/api/v1/connectors", list_connectors),
    ("POST", "/api/v1/connectors/{name}/poll", poll_connector),
    ("GET", "/api/v1/connectors/{name}/records/{kind}", list_partner_records),
    ("POST", "/api/v1/connectors/{name}/records/{kind}", create_partner_record),
    ("GET", "/api/v1/connectors/{name}/records/{kind}/{id}", get_partner_record),
    ("PATCH", "/api/v1/connectors/{name}/records/{kind}/{id}", update_partner_record),
    ("POST", "/api/v1/connectors/{name}/records/{kind}/{id}/archive", archive_partner_record),
    ("GET", "/api/v1/partner-orders", list_partner_orders),
    ("GET", "/api/v1/dead-letters", list_dead_letters),
    ("POST", "/api/v1/dead-letters/{id}/replay", replay_dead_letter),
    ("POST", "/api/v1/dead-letters/{id}/discard", discard_dead_letter),
    ("GET", "/api/v1/openapi.json", openapi),
    ("GET", "/healthz", healthz),
    ("GET", "/readyz", readyz),
    ("GET", "/metrics", metrics),
]

