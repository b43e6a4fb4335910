"""The HTTP API for internal services: bearer tokens, one error shape, cursor pagination.

Each route is declared once in ROUTES: its query and body (gateway/shapes.py models), what it
answers, and its handler. The declaration (gateway/routes.py) checks the request before the
handler runs (every problem at once) and is what the OpenAPI document is made from.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from aiohttp import web
from pydantic import StringConstraints

from gateway import logs
from gateway.connector import Connector, Feed
from gateway.domain.records import (
    FulfillmentOrder,
    FulfillmentOrderLine,
    OrderRef,
    PartnerRecord,
    new_id,
    now_iso,
    parse_iso,
)
from gateway.errors import (
    BadRequest,
    NotFound,
    OperationUnsupported,
)
from gateway.names import LIST, PUSH_INVENTORY, record_operation
from gateway.openapi import PageOf, document
from gateway.routes import (
    CATCH_ALL,
    Inputs,
    Route,
    gateway_of,
    json_response,
    no_route,
    page_response,
    plain,
    refused,
)
from gateway.shapes import (
    ArchiveRequest,
    ChannelOrderRequest,
    ChannelView,
    ConnectorView,
    DeadLetterAction,
    DeadLetterQuery,
    DeadLetterWhere,
    DestinationView,
    DiscardRequest,
    FeedView,
    FulfillmentOrderQuery,
    FulfillmentOrderRequest,
    Health,
    Id,
    InventoryQueued,
    MatchRequest,
    Name,
    Paging,
    PartnerOrderQuery,
    PartnerOrderView,
    PollQuery,
    PollResultView,
    Queued,
    Readiness,
    RecordQuery,
    RecordView,
    RecordWrite,
    ReplayJobView,
    ReplayRequest,
    ReplenishmentRequest,
    ShipmentQuery,
)
from gateway.stock_api import STOCK_ROUTES
from storage import (
    INBOX,
    OUTBOX,
    DeadLetterFilter,
    FeedState,
    NewFulfillmentOrder,
)
from storage.models import (
    DeadLetter,
    FulfillmentOrderSummary,
    FulfillmentOrderView,
    ShipmentView,
)

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logs.get("gateway.api")
def _invalid(field_path: str, message: str) -> BadRequest:
    return refused([{"field": field_path, "code": "invalid_value", "message": message}])


# fulfillment orders

def new_fulfillment_order(body: FulfillmentOrderRequest,
                          extra_hash: dict[str, Any] | None = None) -> NewFulfillmentOrder:
    """The FO a checked request asks for; the request's hash makes a repeat recognisable."""
    lines = tuple(FulfillmentOrderLine(line.line_id or str(i + 1), line.sku, line.quantity)
                  for i, line in enumerate(body.lines))
    refs = [OrderRef("order_number", body.order_number)] if body.order_number else []
    refs += [OrderRef(ref.kind, ref.value) for ref in body.external_refs]
    canonical = {**body.model_dump(exclude={"id"}, exclude_defaults=True), **(extra_hash or {})}
    request_hash = hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()
    fo = FulfillmentOrder(id=body.id or new_id("fo"), seq=0, lines=lines,
                          order_number=body.order_number, channel=body.channel, refs=tuple(refs))
    ship_to = body.ship_to.model_dump(exclude_none=True) if body.ship_to else {}
    return NewFulfillmentOrder(fo=fo, request_hash=request_hash, ship_to=ship_to,
                               custom_fields=dict(body.custom_fields), created_at=now_iso())


def _check_channel(gw: Gateway, name: str | None) -> None:
    """With channels configured, an FO names one of them: a typo must not skip its push."""
    if gw.config.channels and name is not None and gw.config.channel(name) is None:
        raise _invalid("channel", f"{name!r} is not a configured channel; known: "
                       + ", ".join(c.name for c in gw.config.channels))


async def _create(gw: Gateway, new: NewFulfillmentOrder) -> web.Response:
    _check_channel(gw, new.fo.channel)
    created = await gw.commands.create_fulfillment_order(new)
    view = await gw.storage.fulfillment_order_view(new.fo.id)
    return json_response(view, 201 if created else 200)


async def create_fulfillment_order(request: web.Request, inputs: Inputs) -> web.Response:
    return await _create(gateway_of(request), new_fulfillment_order(inputs.body))


async def list_channels(request: web.Request, inputs: Inputs) -> web.Response:
    return page_response([c.describe() for c in gateway_of(request).config.channels], None)


async def create_channel_order(request: web.Request, inputs: Inputs) -> web.Response:
    """Invoice first: an internal service posts an invoiced order; it becomes an FO of this
    channel (pushed as the channel says) and no invoice is requested for it."""
    gw, name = gateway_of(request), request.match_info["name"]
    if gw.config.channel(name) is None:
        raise NotFound(f"channel {name} is not configured")
    body: ChannelOrderRequest = inputs.body
    if body.channel not in (None, name):
        raise _invalid("channel", f"this endpoint creates orders of channel {name!r}")
    order = FulfillmentOrderRequest.model_validate(
        {**body.model_dump(exclude={"invoice_id"}), "channel": name})
    new = new_fulfillment_order(order, extra_hash={"invoice_id": body.invoice_id})
    return await _create(gw, replace(new, flow="invoice_first", invoice_id=body.invoice_id))


async def get_fulfillment_order(request: web.Request, inputs: Inputs) -> web.Response:
    fo_id = request.match_info["id"]
    view = await gateway_of(request).storage.fulfillment_order_view(fo_id)
    if view is None:
        raise NotFound(f"fulfillment order {fo_id} does not exist")
    return json_response(view)


async def list_fulfillment_orders(request: web.Request, inputs: Inputs) -> web.Response:
    q: FulfillmentOrderQuery = inputs.query
    page = await gateway_of(request).storage.list_fulfillment_orders(
        q.status, q.updated_since, q.cursor, q.limit)
    return page_response(page.items, page.next_cursor)


async def cancel_fulfillment_order(request: web.Request, inputs: Inputs) -> web.Response:
    gw, fo_id = gateway_of(request), request.match_info["id"]
    await gw.commands.cancel_fulfillment_order(fo_id)
    return json_response(await gw.storage.fulfillment_order_view(fo_id))


# shipments

async def get_shipment(request: web.Request, inputs: Inputs) -> web.Response:
    shipment_id = request.match_info["id"]
    view = await gateway_of(request).storage.shipment_view(shipment_id)
    if view is None:
        raise NotFound(f"shipment {shipment_id} does not exist")
    return json_response(view)


async def list_shipments(request: web.Request, inputs: Inputs) -> web.Response:
    q: ShipmentQuery = inputs.query
    page = await gateway_of(request).storage.list_shipments(q.fulfillment_order_id, q.cursor,
                                                          q.limit)
    return page_response(page.items, page.next_cursor)


async def list_unmatched(request: web.Request, inputs: Inputs) -> web.Response:
    q: Paging = inputs.query
    page = await gateway_of(request).storage.list_unmatched(q.cursor, q.limit)
    return page_response(page.items, page.next_cursor)


async def match_unmatched(request: web.Request, inputs: Inputs) -> web.Response:
    gw, shipment_id = gateway_of(request), request.match_info["id"]
    await gw.commands.match_unmatched(shipment_id, list(inputs.body.fulfillment_order_ids))
    return json_response(await gw.storage.shipment_view(shipment_id))


async def unmatch_shipment(request: web.Request, inputs: Inputs) -> web.Response:
    """Undo a manual match: the rules match the shipment again, or it waits unmatched."""
    gw, shipment_id = gateway_of(request), request.match_info["id"]
    await gw.commands.unmatch(shipment_id)
    return json_response(await gw.storage.shipment_view(shipment_id))


# connectors

def _feed_view(connector: Connector, feed: Feed, state: FeedState | None) -> FeedView:
    return FeedView(
        name=feed.name, description=feed.description, enabled=connector.feed_enabled(feed),
        interval_minutes=connector.feed_interval(feed),
        cursor=state.cursor if state else None,
        last_poll_at=state.last_poll_at if state else None,
        last_result=dict(state.last_result) if state and state.last_poll_at else None,
        last_error=state.last_error if state else None,
        last_error_at=state.last_error_at if state else None,
        running=_leased(state),
        # which process runs it (several replicas on one database: which one)
        lease_owner=state.owner if state and _leased(state) else None,
        lease_until=state.lease_until if state and _leased(state) else None,
        paused_by=state.paused_by if state else None,
        paused_at=state.paused_at if state else None)


def _leased(state: FeedState | None) -> bool:
    return bool(state and state.owner and state.lease_until and state.lease_until > now_iso())


async def list_connectors(request: web.Request, inputs: Inputs) -> web.Response:
    gw = gateway_of(request)
    items = []
    for config in gw.config.connectors:
        connector = gw.connectors.get(config.name)
        item = ConnectorView(name=config.name, type=config.type, enabled=config.enabled)
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
    return page_response(items, None)


async def poll_connector(request: web.Request, inputs: Inputs) -> web.Response:
    return json_response(await gateway_of(request).poller.poll(
        request.match_info["name"], inputs.query.feed))


async def _feed_paused(request: web.Request, by: str | None) -> web.Response:
    gw = gateway_of(request)
    name, feed_name = request.match_info["name"], request.match_info["feed"]
    connector, feed = await gw.commands.pause_feed(name, feed_name, by)
    states = {s.feed: s for s in await gw.storage.feed_states(name)}
    return json_response(_feed_view(connector, feed, states.get(feed_name)))


async def pause_feed(request: web.Request, inputs: Inputs) -> web.Response:
    return await _feed_paused(request, "api")


async def resume_feed(request: web.Request, inputs: Inputs) -> web.Response:
    return await _feed_paused(request, None)


async def list_destinations(request: web.Request, inputs: Inputs) -> web.Response:
    return page_response(await gateway_of(request).commands.destinations(), None)


async def _destination_paused(request: web.Request, by: str | None) -> web.Response:
    gw, destination = gateway_of(request), request.match_info["destination"]
    await gw.commands.pause_destination(destination, by)
    [view] = [d for d in await gw.commands.destinations() if d["destination"] == destination]
    return json_response(view)


async def pause_destination(request: web.Request, inputs: Inputs) -> web.Response:
    return await _destination_paused(request, "api")


async def resume_destination(request: web.Request, inputs: Inputs) -> web.Response:
    return await _destination_paused(request, None)


# dead letters

def dead_letter_filter(where: DeadLetterWhere) -> DeadLetterFilter:
    return DeadLetterFilter(name=where.name, kind=where.kind, error=where.error,
                            since=where.since, source=where.source)


async def list_dead_letters(request: web.Request, inputs: Inputs) -> web.Response:
    q: DeadLetterQuery = inputs.query
    page = await gateway_of(request).storage.list_dead_letters(q.cursor, q.limit,
                                                             dead_letter_filter(q))
    return page_response(page.items, page.next_cursor)


async def replay_dead_letters(request: web.Request, inputs: Inputs) -> web.Response:
    """Every dead letter the filter matches, replayed in the background."""
    job = gateway_of(request).commands.replay_matching(dead_letter_filter(inputs.body))
    return json_response(job.view(), 202)


async def replay_job(request: web.Request, inputs: Inputs) -> web.Response:
    job = gateway_of(request).commands.replays.get(request.match_info["id"])
    if job is None:
        raise NotFound(f"no replay {request.match_info['id']} on this process (jobs live in"
                       " the process that runs them)")
    return json_response(job.view())


async def replay_dead_letter(request: web.Request, inputs: Inputs) -> web.Response:
    gw, raw = gateway_of(request), request.match_info["id"]
    if not await gw.commands.replay_dead_letter(raw):
        raise NotFound(f"dead letter {raw} does not exist")
    return json_response(DeadLetterAction(id=raw, status="replaying"), 202)


async def discard_dead_letter(request: web.Request, inputs: Inputs) -> web.Response:
    gw, raw = gateway_of(request), request.match_info["id"]
    reason = inputs.body.reason if inputs.body is not None else None
    if not await gw.commands.discard_dead_letter(raw, reason):
        raise NotFound(f"dead letter {raw} does not exist")
    return json_response(DeadLetterAction(id=raw, status="discarded"))


# partner records and orders

def _record_view(record: PartnerRecord) -> RecordView:
    return RecordView(id=record.external_id, connector=record.source, kind=record.kind,
                      fields=dict(record.fields), updated_at=record.updated_at,
                      archived=record.archived)


def _record_kind(gw: Gateway, request: web.Request) -> tuple[str, str]:
    name, kind = request.match_info["name"], request.match_info["kind"]
    connector = gw.connectors.get(name)
    if connector is None:
        raise NotFound(f"no enabled connector {name!r}")
    if connector.record_kind(kind) is None:
        listing = record_operation(LIST, kind)
        if listing in connector.unsupported:
            raise OperationUnsupported(name, listing, connector.unsupported[listing])
        kinds = ", ".join(k.name for k in connector.record_kinds) or "none"
        raise NotFound(f"connector {name!r} keeps no {kind!r} records; its kinds: {kinds}")
    return name, kind


async def list_partner_records(request: web.Request, inputs: Inputs) -> web.Response:
    gw = gateway_of(request)
    name, kind = _record_kind(gw, request)
    q: RecordQuery = inputs.query
    page = await gw.storage.list_partner_records(name, kind, q.updated_since, q.cursor, q.limit)
    return page_response([_record_view(r) for r in page.items], page.next_cursor)


async def get_partner_record(request: web.Request, inputs: Inputs) -> web.Response:
    gw = gateway_of(request)
    name, kind = _record_kind(gw, request)
    record = await gw.storage.partner_record(name, kind, request.match_info["id"])
    if record is None:
        raise NotFound(f"connector {name!r} has no {kind} {request.match_info['id']!r}")
    return json_response(_record_view(record))


async def _write_record(request: web.Request, write: str, external_id: str | None,
                        fields: dict[str, Any]) -> web.Response:
    gw = gateway_of(request)
    name, kind = _record_kind(gw, request)
    if write in ("create", "update") and not fields:
        raise _invalid("fields", "the partner's fields to write; at least one")
    message_id = await gw.commands.write_partner_record(name, kind, write, external_id, fields)
    return json_response(Queued(id=f"outbox-{message_id}", status="pending",
                                operation=f"{write}:{kind}"), 202)


async def create_partner_record(request: web.Request, inputs: Inputs) -> web.Response:
    return await _write_record(request, "create", None, inputs.body.fields)


async def update_partner_record(request: web.Request, inputs: Inputs) -> web.Response:
    return await _write_record(request, "update", request.match_info["id"], inputs.body.fields)


async def archive_partner_record(request: web.Request, inputs: Inputs) -> web.Response:
    return await _write_record(request, "archive", request.match_info["id"], inputs.body.fields)


async def delete_partner_record(request: web.Request, inputs: Inputs) -> web.Response:
    return await _write_record(request, "delete", request.match_info["id"], inputs.body.fields)


async def hold_partner_record(request: web.Request, inputs: Inputs) -> web.Response:
    return await _write_record(request, "hold", request.match_info["id"], inputs.body.fields)


async def push_replenishments(request: web.Request, inputs: Inputs) -> web.Response:
    """Inventory levels for partners (their replenishments): consolidated, checked against
    what each partner knows, queued; 202 once queued."""
    body: ReplenishmentRequest = inputs.body
    levels = [level.model_dump() for level in body.levels]
    lines, queued = await gateway_of(request).commands.push_inventory(body.connector, levels)
    return json_response(InventoryQueued(
        received=len(levels), lines=len(lines),
        messages=[Queued(id=f"outbox-{message_id}", status="pending", operation=PUSH_INVENTORY)
                  for _, message_id in queued]), 202)


async def list_partner_orders(request: web.Request, inputs: Inputs) -> web.Response:
    """Orders placed at partners, with the FO each became; `unclaimed=true`: those no
    channel takes (kept, not dropped); `held=true`: those the connector could not map."""
    q: PartnerOrderQuery = inputs.query
    page = await gateway_of(request).storage.list_partner_orders(
        q.connector, q.unclaimed, q.held, q.cursor, q.limit)
    return page_response([PartnerOrderView(
        connector=o.order.source, id=o.order.external_id, order_number=o.order.order_number,
        status=o.order.status,  # type: ignore[typeddict-item]
        lines=[{"sku": ln.sku, "quantity": ln.quantity, "partner_line_id": ln.partner_line_id}
               for ln in o.order.lines],
        ship_to=dict(o.order.ship_to), customer_ref=o.order.customer_ref,
        partner_updated_at=o.order.partner_updated_at, fulfillment_order_id=o.fo_id,
        hold_reason=o.order.hold_reason, recorded_at=o.recorded_at, raw=dict(o.order.raw)) for o in page.items],
        page.next_cursor)


# webhooks, the document, health, metrics

async def receive_webhook(request: web.Request, inputs: Inputs) -> web.Response:
    """Verified by the connector (its own token, signature and body checks), not a bearer
    token; stored durably before the 2xx."""
    return await gateway_of(request).receive_webhook(request)


async def openapi(request: web.Request, inputs: Inputs) -> web.Response:
    gw = gateway_of(request)
    parameters = {p.name: p for c in gw.connectors.values() for p in c.webhook_parameters}
    return json_response(document(ROUTES, parameters))


async def healthz(request: web.Request, inputs: Inputs) -> web.Response:
    return json_response(Health(status="ok"))


async def readyz(request: web.Request, inputs: Inputs) -> web.Response:
    gw = gateway_of(request)
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
    body = Readiness(status="ready" if ready else "not_ready", checks=checks)
    if problem is not None:
        body["storage_error"] = problem
    return json_response(body, 200 if ready else 503)


async def metrics(request: web.Request, inputs: Inputs) -> web.Response:
    gw = gateway_of(request)
    stats = await gw.storage.inbox_stats()
    gw.metrics.inbox_depth.set(stats["depth"])
    gw.metrics.inbox_oldest_age.set(stats["oldest_age_seconds"])
    gw.metrics.dead_letters.labels(INBOX).set(stats["dead"])
    outbox = await gw.storage.outbox_stats()
    gw.metrics.outbox_pending.set(outbox["pending"])
    gw.metrics.dead_letters.labels(OUTBOX).set(outbox["dead"])
    gw.metrics.outbox_oldest_pending_age.clear()  # a destination with nothing due: no sample
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


FO = FulfillmentOrderView
ID = {"id": Id}
NAME = {"name": Name}
RECORDS = {"name": Name, "kind": Name}
FEED = {"name": Name, "feed": Name}
DESTINATION = Annotated[str, StringConstraints(pattern=r"^(connector|subscriber):[a-z][a-z0-9_-]{0,63}$")]
ONE_RECORD = {"name": Name, "kind": Name, "id": str}
ROUTES: list[Route] = [
    Route("POST", "/api/v1/fulfillment-orders", create_fulfillment_order,
          "createFulfillmentOrder", "Create a fulfillment order (idempotent with a client id)",
          {201: (FO, "Created"), 200: (FO, "The same request again: the same FO")},
          body=FulfillmentOrderRequest, also=(409,)),
    Route("GET", "/api/v1/fulfillment-orders", list_fulfillment_orders, "listFulfillmentOrders",
          "List fulfillment orders", {200: (PageOf(FulfillmentOrderSummary), "A page")},
          query=FulfillmentOrderQuery),
    Route("GET", "/api/v1/fulfillment-orders/{id}", get_fulfillment_order,
          "getFulfillmentOrder", "A fulfillment order with lines, shipments and timeline",
          {200: (FO, "The FO")}, path_params=ID),
    Route("POST", "/api/v1/fulfillment-orders/{id}/cancel", cancel_fulfillment_order,
          "cancelFulfillmentOrder", "Cancel a fulfillment order",
          {200: (FO, "The cancelled FO")}, path_params=ID, also=(409,)),
    Route("GET", "/api/v1/shipments", list_shipments, "listShipments",
          "Canonical shipments with their allocations",
          {200: (PageOf(ShipmentView), "A page")}, query=ShipmentQuery),
    Route("GET", "/api/v1/shipments/{id}", get_shipment, "getShipment", "One canonical shipment",
          {200: (ShipmentView, "The shipment")}, path_params=ID),
    Route("GET", "/api/v1/unmatched-shipments", list_unmatched, "listUnmatchedShipments",
          "Shipments no rule could match, with reason and candidates",
          {200: (PageOf(ShipmentView), "A page")}, query=Paging),
    Route("POST", "/api/v1/unmatched-shipments/{id}/match", match_unmatched, "matchShipment",
          "Match an unmatched shipment by hand", {200: (ShipmentView, "The matched shipment")},
          body=MatchRequest, path_params=ID, also=(409,)),
    Route("POST", "/api/v1/shipments/{id}/unmatch", unmatch_shipment, "unmatchShipment",
          "Undo a manual match: the rules match it again, or it waits in the unmatched queue",
          {200: (ShipmentView, "The shipment")}, path_params=ID, also=(409,)),
    Route("GET", "/api/v1/channels", list_channels, "listChannels",
          "The configured sales channels", {200: (PageOf(ChannelView), "All channels")}),
    Route("POST", "/api/v1/channels/{name}/orders", create_channel_order, "createChannelOrder",
          "Invoice first: create (and push) the FO of an invoiced order",
          {201: (FO, "Created"), 200: (FO, "The same request again: the same FO")},
          body=ChannelOrderRequest, path_params=NAME, also=(409,)),
    Route("GET", "/api/v1/connectors", list_connectors, "listConnectors",
          "Connector health: last poll, cursor, errors, rate-limit state",
          {200: (PageOf(ConnectorView), "All connectors")}),
    Route("POST", "/api/v1/connectors/{name}/poll", poll_connector, "pollConnector",
          "Poll a connector now: every enabled feed, or ?feed=",
          {200: (PollResultView, "What the poll found")}, query=PollQuery, path_params=NAME,
          also=(409, 502, 503)),
    Route("POST", "/api/v1/connectors/{name}/feeds/{feed}/pause", pause_feed, "pauseFeed",
          "Stop polling a feed until resumed (scheduled and manual polls)",
          {200: (FeedView, "The feed, paused")}, path_params=FEED),
    Route("POST", "/api/v1/connectors/{name}/feeds/{feed}/resume", resume_feed,
          "resumeFeed", "Poll a paused feed again at its interval",
          {200: (FeedView, "The feed")}, path_params=FEED),
    Route("GET", "/api/v1/destinations", list_destinations, "listDestinations",
          "Where the outbox sends (each connector and subscriber): paused or not, and the"
          " oldest message waiting", {200: (PageOf(DestinationView), "All destinations")}),
    Route("POST", "/api/v1/destinations/{destination}/pause", pause_destination,
          "pauseDestination", "Send nothing to a destination until resumed; its messages"
          " wait, in order", {200: (DestinationView, "Paused")},
          path_params={"destination": DESTINATION}),
    Route("POST", "/api/v1/destinations/{destination}/resume", resume_destination,
          "resumeDestination", "Send to a paused destination again",
          {200: (DestinationView, "Resumed")}, path_params={"destination": DESTINATION}),
    Route("GET", "/api/v1/connectors/{name}/records/{kind}", list_partner_records,
          "listPartnerRecords", "A connector's partner records of one kind, oldest change"
          " first", {200: (PageOf(RecordView), "A page")}, query=RecordQuery,
          path_params=RECORDS),
    Route("POST", "/api/v1/connectors/{name}/records/{kind}", create_partner_record,
          "createPartnerRecord", "Create a record at the partner",
          {202: (Queued, "Queued for the partner; the stored record changes when the partner"
                         " confirms")}, body=RecordWrite, path_params=RECORDS, also=(501,)),
    Route("GET", "/api/v1/connectors/{name}/records/{kind}/{id}", get_partner_record,
          "getPartnerRecord", "One partner record", {200: (RecordView, "The record")},
          path_params=ONE_RECORD),
    Route("PATCH", "/api/v1/connectors/{name}/records/{kind}/{id}", update_partner_record,
          "updatePartnerRecord", "Update a record at the partner",
          {202: (Queued, "Queued for the partner")}, body=RecordWrite,
          path_params=ONE_RECORD, also=(501,)),
    Route("POST", "/api/v1/connectors/{name}/records/{kind}/{id}/archive",
          archive_partner_record, "archivePartnerRecord", "Archive a record at the partner",
          {202: (Queued, "Queued for the partner")}, body=ArchiveRequest, body_required=False,
          path_params=ONE_RECORD, also=(501,)),
    Route("POST", "/api/v1/connectors/{name}/records/{kind}/{id}/delete",
          delete_partner_record, "deletePartnerRecord", "Delete a record at the partner (the"
          " kept record shows it archived once the partner confirms)",
          {202: (Queued, "Queued for the partner")}, body=ArchiveRequest, body_required=False,
          path_params=ONE_RECORD, also=(501,)),
    Route("POST", "/api/v1/connectors/{name}/records/{kind}/{id}/hold", hold_partner_record,
          "holdPartnerRecord", "Put a record on hold at the partner (an order, say)",
          {202: (Queued, "Queued for the partner")}, body=ArchiveRequest, body_required=False,
          path_params=ONE_RECORD, also=(501,)),
    Route("POST", "/api/v1/inventory/replenishments", push_replenishments,
          "pushReplenishments", "Stock levels per warehouse, SKU and date (none: available"
          " now) for the partners that take them; consolidated (the last level for a"
          " warehouse, date and SKU wins), checked, then queued",
          {202: (InventoryQueued, "Queued, one message per connector")},
          body=ReplenishmentRequest, also=(404, 501)),
    *STOCK_ROUTES,
    Route("GET", "/api/v1/partner-orders", list_partner_orders, "listPartnerOrders",
          "Orders placed at partners and the FO each became; unclaimed=true lists those no"
          " channel takes, held=true those the connector could not map", {200: (PageOf(PartnerOrderView), "A page")},
          query=PartnerOrderQuery),
    Route("GET", "/api/v1/dead-letters", list_dead_letters, "listDeadLetters",
          "Inbox events and outbound messages that gave up; filter by name, kind, error"
          " text, since, source", {200: (PageOf(DeadLetter), "A page")},
          query=DeadLetterQuery),
    Route("POST", "/api/v1/dead-letters/replay", replay_dead_letters, "replayDeadLetters",
          "Replay every dead letter the filter matches, in the background",
          {202: (ReplayJobView, "Started: GET /api/v1/dead-letters/replays/{id} follows it")},
          body=ReplayRequest, body_required=False),
    Route("GET", "/api/v1/dead-letters/replays/{id}", replay_job, "getReplayJob",
          "A bulk replay's progress and report (on the process that runs it)",
          {200: (ReplayJobView, "The job")}, path_params={"id": str}),
    Route("POST", "/api/v1/dead-letters/{id}/replay", replay_dead_letter, "replayDeadLetter",
          "Put a dead letter back in the queue", {202: (DeadLetterAction, "Queued again")},
          path_params={"id": str}),
    Route("POST", "/api/v1/dead-letters/{id}/discard", discard_dead_letter,
          "discardDeadLetter", "Give up on a dead letter for good: no longer listed or"
          " replayed; the reason is kept with it", {200: (DeadLetterAction, "Discarded")},
          body=DiscardRequest, body_required=False, path_params={"id": str}),
    Route("POST", "/webhooks/{connector}", receive_webhook, "receiveWebhook",
          "A partner's webhook; verified by the connector, not a bearer token",
          {200: ({"type": "object"}, "Stored (or nothing to do): safe to forget")},
          query=None, body_schema={"type": "object", "description": "as the partner sends it"},
          path_params={"connector": Name}, secured=False, also=(401, 404, 408, 413)),
    Route("GET", "/api/v1/openapi.json", openapi, "openapi", "This document",
          {200: (None, "OpenAPI 3.1")}),
    Route("GET", "/healthz", healthz, "healthz", "Liveness", {200: (Health, "Alive")},
          secured=False),
    Route("GET", "/readyz", readyz, "readyz", "Readiness: storage (a write), migrations,"
          " scheduler, worker, outbox",
          {200: (Readiness, "Ready"), 503: (Readiness, "Not ready")}, secured=False),
    Route("GET", "/metrics", metrics, "metrics", "Prometheus metrics",
          {200: ("text", "Prometheus text format")}, secured=False),
]
# every path no route serves
NO_ROUTE = Route("*", CATCH_ALL, plain(no_route), "noRoute", "", {}, query=None)
