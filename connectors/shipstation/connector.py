"""The ShipStation v1 connector: webhook token check, resource_url fetch, polling, lookups.

ShipStation v1 signs nothing, so the registered webhook URL carries a secret `token` query
parameter, and only data re-fetched from the API with our credentials is trusted. A
resource_url is fetched only when its origin matches `allowed_resource_origin`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import aiohttp
import orjson
from aiohttp import web
from yarl import URL

from connectors.shipstation import normalize, push
from connectors.shipstation import orders as orders_mod
from connectors.shipstation.client import ShipStationClient, basic_auth
from connectors.shipstation.pacific import utc_to_pacific
from gateway.config import Config, ConnectorConfig
from gateway.connector import (
    Connector,
    DemoContext,
    Feed,
    Option,
    PollResult,
    WebhookParameter,
    WebhookRequest,
    regex,
)
from gateway.domain.records import Shipment, parse_iso, utc_iso
from gateway.errors import BadRequest, PartnerRejected, PartnerUnavailable, WebhookRejected
from gateway.metrics import Metrics
from gateway.names import CANCEL_ORDER, PUSH_ORDER
from storage import InboxEvent, NewInboxEvent, OutboxMessage

SHIPMENT_EVENTS = {"SHIP_NOTIFY", "ITEM_SHIP_NOTIFY"}
FULFILLMENT_EVENTS = {"FULFILLMENT_SHIPPED"}
IGNORED_EVENTS = {"ORDER_NOTIFY", "ITEM_ORDER_NOTIFY", "FULFILLMENT_REJECTED"}
RESOURCE_PATHS = ("/shipments", "/fulfillments")
SAFE_PREFIXES = 64  # resource_url prefixes remembered as safe (origins x paths: a handful)
DEFAULT_ALLOWED_ORIGIN = r"https://ssapi\d*\.shipstation\.com"
SANDBOX_KEY, SANDBOX_SECRET = "sandbox-key", "sandbox-secret"
SANDBOX_ABOUT = f"""\
A ShipStation v1 stand-in: /shipments, /fulfillments, /orders (with split and merged
orders), /orders/createorder, /shipments/voidlabel and /webhooks, with ShipStation's
paging, Pacific timestamps and its 40-a-minute limit (X-Rate-Limit-* headers, 429s).

Credentials (HTTP Basic): $SHIPSTATION_API_KEY and $SHIPSTATION_API_SECRET, or
{SANDBOX_KEY} / {SANDBOX_SECRET} when unset; $SHIPSTATION_RATE_LIMIT requests a
minute (default 40).

Control routes (no auth, no rate limit), JSON bodies:
  POST /_sandbox/orders                         create an order
  POST /_sandbox/orders/{{id}}/split              split it into child orders
  POST /_sandbox/orders/merge                   merge orders into one
  POST /_sandbox/orders/{{id}}/ship               create a label (a shipment)
  POST /_sandbox/orders/{{id}}/mark-shipped       mark shipped outside ShipStation
  POST /_sandbox/shipments/{{id}}/void            void a label (sends no webhook)
  POST /_sandbox/shipments/{{id}}/relabel         void and label again
  POST /_sandbox/rate-limit                     set the limit
  POST /_sandbox/fail                           fail the next requests to a path
  GET  /_sandbox/requests                       the request log, with POST bodies
"""


class ShipStationConnector(Connector):
    options: ClassVar[tuple[Option, ...]] = (
        Option("api_key_env", str, help="variable holding the v1 API key (HTTP Basic user)"),
        Option("api_secret_env", str, help="variable holding the v1 API secret"),
        Option("webhook_token_env", str,
               help="variable holding the secret token the webhook URL must carry"),
        Option("allowed_resource_origin", str, DEFAULT_ALLOWED_ORIGIN, check=regex,
               help="regex a webhook's resource_url origin must match in full"),
        Option("rate_limit_per_minute", int, 40, minimum=1),
        Option("rate_limit_window_seconds", float, 60.0, minimum=1),
        Option("poll_overlap_minutes", float, 60.0, minimum=0),
        Option("initial_lookback_hours", float, 24.0, minimum=0),
        Option("page_size", int, 500, minimum=1, maximum=500),
        Option("request_timeout_seconds", float, 30.0, minimum=0.1),
        Option("max_rate_limit_waits", int, 10, minimum=0),
        Option("poll_budget_share", float, 0.75, minimum=0.05, maximum=1.0,
               help="most of each rate-limit window polls may take; the rest is kept for"
                    " order pushes, so they never wait behind a poll"),
        Option("max_poll_requests", int, 200, minimum=4,
               help="requests one poll makes at most; a poll that needs more continues in"
                    " the next cycle from where it stopped"),
    )
    webhooks = True
    webhook_parameters = (WebhookParameter(
        "token", "ShipStation: the secret the webhook URL was registered with"
                 " ($webhook_token_env); a webhook without it is 401"),)
    sandbox_port = 8081
    sandbox_about = SANDBOX_ABOUT
    feeds: ClassVar[tuple[Feed, ...]] = (
        Feed("shipments", 15.0, description="labels created or voided, and orders marked"
             " shipped outside ShipStation (/shipments, /fulfillments)"),)
    produces: ClassVar[tuple[type, ...]] = (Shipment,)
    operations: ClassVar[frozenset[str]] = frozenset({PUSH_ORDER, CANCEL_ORDER})

    def __init__(self, config: ConnectorConfig, app_config: Config,
                 session: aiohttp.ClientSession, metrics: Metrics, **contract: Any) -> None:
        super().__init__(config, app_config, session, metrics, **contract)
        settings = self.settings
        key = app_config.secret(settings["api_key_env"])
        secret = app_config.secret(settings["api_secret_env"])
        self._webhook_token = app_config.secret(settings["webhook_token_env"])
        self._allowed_origin: re.Pattern[str] = settings["allowed_resource_origin"]
        self._safe_prefixes: set[str] = set()  # resource_url up to its query, found safe
        self.page_size = settings["page_size"]
        self.overlap = timedelta(minutes=settings["poll_overlap_minutes"])
        self.initial_lookback = timedelta(hours=settings["initial_lookback_hours"])
        self.budget = self.rate_budget(settings["rate_limit_per_minute"],
                                       settings["rate_limit_window_seconds"])
        # Polls take at most their share of each window: the rest is always there for the
        # orders pushed, which therefore never wait behind a poll.
        self.budget.background_share(settings["poll_budget_share"])
        self.max_poll_requests = settings["max_poll_requests"]
        self.poll_requests = 0  # made by polls (their client), ever: stats and tests
        common = {"timeout_seconds": settings["request_timeout_seconds"],
                  "max_rate_waits": settings["max_rate_limit_waits"]}
        self.client = ShipStationClient(session, config.base_url, basic_auth(key, secret),
                                        self.budget, on_response=self._count, **common)
        self.poll_client = ShipStationClient(session, config.base_url, basic_auth(key, secret),
                                             self.budget, on_response=self._count_poll,
                                             background=True, **common)
        # The orders labels and fulfillments name, resolved a batch at a time.
        self.book = orders_mod.OrderBook(self.client)

    def _count_poll(self, status: int) -> None:
        self.poll_requests += 1
        self._count(status)

    def _count(self, status: int) -> None:
        self.metrics.partner_requests.labels(self.name, str(status)).inc()
        if status == 429:
            self.metrics.partner_429.labels(self.name).inc()

    # webhooks

    def verify(self, request: WebhookRequest) -> str | None:
        """The URL's token, then the body: a JSON object whose resource_url this connector
        would follow. An event type it does not act on is acknowledged and not stored."""
        token = request.query.get("token", "")
        if not hmac.compare_digest(token.encode(), self._webhook_token.encode()):
            raise WebhookRejected("webhook token missing or wrong")
        body = request.json()
        if not isinstance(body, dict):
            raise BadRequest("body is not a JSON object (ShipStation sends {resource_url,"
                             " resource_type})")
        resource_type = body.get("resource_type")
        if resource_type is not None and not isinstance(resource_type, str):
            raise BadRequest("resource_type is not a string")
        if resource_type in IGNORED_EVENTS:
            return None
        self._check_resource_url(body.get("resource_url"))
        return "sha256:" + hashlib.sha256(request.body).hexdigest()

    def _check_resource_url(self, raw: Any) -> None:
        """resource_url's check at intake. A URL whose part before the query is one already
        found safe is safe again (the query, a batch id, is what changes between webhooks;
        a fragment is refused either way): parsing every one cost a tenth of intake's
        time. The worker parses it whole before fetching it."""
        if isinstance(raw, str):
            before, _, query = raw.partition("?")
            if before in self._safe_prefixes and "#" not in query and len(raw) <= 2048:
                return
        try:
            self.resource_url(raw)
        except PartnerRejected as exc:
            raise BadRequest(exc.message) from None
        before = raw.partition("?")[0]
        if "#" not in before and len(self._safe_prefixes) < SAFE_PREFIXES:
            self._safe_prefixes.add(before)

    def resource_url(self, raw: Any) -> URL:
        """The webhook's resource_url, if it is safe to send our credentials to: an allowed
        origin and exactly one of the API paths a webhook names (no prefix match, no
        encoded or dot segments)."""
        if not isinstance(raw, str) or not raw or len(raw) > 2048:
            raise PartnerRejected("resource_url missing or not a string", 400)
        try:
            url = URL(raw)
            host = url.host
        except (ValueError, UnicodeError):
            raise PartnerRejected(f"resource_url is not a URL: {raw[:200]}", 400) from None
        if not url.is_absolute() or url.user or url.password or url.fragment or not host:
            raise PartnerRejected(f"resource_url refused: {raw[:200]}", 400)
        origin = f"{url.scheme}://{host}" + (f":{url.explicit_port}" if url.explicit_port else "")
        if not self._allowed_origin.fullmatch(origin):
            raise PartnerRejected(f"resource_url refused: origin {origin} is not allowed", 400)
        if url.raw_path not in RESOURCE_PATHS or url.path != url.raw_path:
            raise PartnerRejected(f"resource_url refused: path {url.raw_path[:200]} is not one"
                                  f" of {', '.join(RESOURCE_PATHS)}", 400)
        return url

    # normalizing

    def _normalized(self, batch: list[tuple[str, dict[str, Any]]],
                          orders: dict[int, dict[str, Any]]) -> list[Shipment]:
        found = []
        for kind, record in batch:
            related = orders_mod.for_record(kind, record, orders)
            if kind == "shipment":
                found.append(normalize.shipment(self.name, record, related))
            else:
                found.append(normalize.fulfillment(self.name, record,
                                                   related[0] if related else None, related[1:]))
        return found

    async def normalize(self, event: InboxEvent) -> list[Shipment]:
        body = orjson.loads(event.body)
        if event.kind == "poll":
            kind, record = body["type"], body["record"]
            if kind not in ("shipment", "fulfillment"):
                raise ValueError(f"unknown polled record type {kind!r}")
            if "orders" in body:  # resolved when it was polled, with the rest of its batch
                orders = {int(o["orderId"]): o for o in body["orders"]}
            else:  # stored by an earlier version
                orders = await self.book.resolve([(kind, record)], None)
            return self._normalized([(kind, record)], orders)
        resource_type = body.get("resource_type")
        if resource_type in IGNORED_EVENTS:
            return []
        url = self.resource_url(body.get("resource_url"))
        if resource_type in SHIPMENT_EVENTS or url.path == "/shipments":
            # The URL asks for no items (includeShipmentItems=False); we need them.
            url = url.update_query(includeShipmentItems="true")
            kind, key = "shipment", "shipments"
        elif resource_type in FULFILLMENT_EVENTS or url.path == "/fulfillments":
            kind, key = "fulfillment", "fulfillments"
        else:
            return []
        batch = [(kind, r) async for r in self.client.pages(url, {}, key)]
        # A label marks its order shipped: its order was modified no earlier than the oldest
        # label of the batch, so one listing from there resolves the batch's orders.
        stamps = [r["createDate"] for _, r in batch if isinstance(r.get("createDate"), str)]
        orders = await self.book.resolve(batch, min(stamps) if stamps else None)
        return self._normalized(batch, orders)

    # polling

    async def poll(self, feed: Feed, cursor: str | None) -> PollResult:
        """Everything created or voided since the cursor (minus the overlap), up to now, and
        the orders those records name, within this poll's share of the request budget.

        A pass lists three things from one window start, page by page: labels created,
        labels voided, fulfillments. One that needs more than `max_poll_requests` stops there
        and the next poll continues it at the next page (the cursor says where; those sets
        only grow, so nothing is skipped, and a page read twice de-duplicates); a finished
        pass moves the window's start to when the pass began."""
        state = orjson.loads(cursor) if cursor else {}
        now = datetime.now(UTC)
        if "pass" in state:
            run = dict(state["pass"])
        else:
            since = parse_iso(state["until"]) if "until" in state else now - self.initial_lookback
            # No end filter: the window is open to "now", and the overlap covers what the next
            # poll must see again (a label indexed late, a timestamp truncated to the second).
            run = {"since": utc_iso(since - self.overlap), "started": utc_iso(now),
                   "listing": 0, "page": 1}
        start = utc_to_pacific(parse_iso(run["since"]))
        labels = {"includeShipmentItems": "true", "sortBy": "CreateDate", "sortDir": "ASC"}
        listings = (("shipments_created", "/shipments", {**labels, "createDateStart": start},
                     "shipments", "shipment"),
                    ("shipments_voided", "/shipments", {**labels, "voidDateStart": start},
                     "shipments", "shipment"),
                    ("fulfillments", "/fulfillments", {"createDateStart": start},
                     "fulfillments", "fulfillment"))
        stats: dict[str, Any] = {"window_start_pacific": start, "shipments_created": 0,
                                 "shipments_voided": 0, "fulfillments": 0}
        batch: dict[str, tuple[str, dict[str, Any]]] = {}  # by delivery key: each version once
        requests = 0
        listing, page = int(run["listing"]), int(run["page"])
        while listing < len(listings) and requests < self.max_poll_requests:
            name, path, params, key, kind = listings[listing]
            answer = await self.poll_client.get(self.poll_client.url(path), {
                **params, "pageSize": self.page_size, "page": page})
            requests += 1
            if not isinstance(answer, dict):
                raise PartnerUnavailable(f"GET {path}: expected an object with {key!r}")
            for record in answer.get(key) or []:
                if isinstance(record, dict):
                    stats[name] += 1
                    batch.setdefault(_version_key(kind, record), (kind, record))
            if page >= (answer.get("pages") or 1):
                listing, page = listing + 1, 1
            else:
                page += 1
        async for link in self.watched_links("fulfiller"):  # orders we placed: keys known
            if link.partner_order_id:
                self.book.know({"orderId": link.partner_order_id, "orderKey": link.fo_id})
        before = self.poll_requests
        orders = await self.book.resolve(batch.values(), start, self.poll_client)
        stats["order_requests"] = self.poll_requests - before
        stats["requests"] = requests + stats["order_requests"]
        done = listing >= len(listings)
        stats["complete"] = done
        records = [_polled(self.name, key, kind, record,
                           orders_mod.for_record(kind, record, orders))
                   for key, (kind, record) in batch.items()]
        next_cursor = {"until": run["started"]} if done else {
            "pass": {**run, "listing": listing, "page": page}}
        return PollResult(records, orjson.dumps(next_cursor).decode(), stats)

    # pushing orders (through the same client, so the same 40/min budget as polling)

    async def push_order(self, message: OutboxMessage) -> dict[str, Any]:
        return await push.upsert(self.client, message.payload, "awaiting_shipment", push.PLACED)

    async def cancel_order(self, message: OutboxMessage) -> dict[str, Any]:
        return await push.upsert(self.client, message.payload, "cancelled", {"cancelled"})

    def status(self) -> dict[str, Any]:
        return {"rate_limit": self.budget.state()}

    @classmethod
    def sandbox(cls, config: ConnectorConfig, app_config: Config) -> web.Application:
        from connectors.shipstation.sandbox import create_app

        return create_app(app_config.secret(config.settings["api_key_env"]),
                          app_config.secret(config.settings["api_secret_env"]),
                          rate_limit=config.settings["rate_limit_per_minute"])

    @classmethod
    def standalone_sandbox(cls) -> web.Application:
        from connectors.shipstation.sandbox import create_app

        return create_app(os.environ.get("SHIPSTATION_API_KEY", SANDBOX_KEY),
                          os.environ.get("SHIPSTATION_API_SECRET", SANDBOX_SECRET),
                          rate_limit=int(os.environ.get("SHIPSTATION_RATE_LIMIT", "40")))

    @classmethod
    async def demo(cls, ctx: DemoContext) -> None:
        from connectors.shipstation.demo import run

        await run(ctx)

    @classmethod
    async def demo_ship(cls, ctx: DemoContext, partner_order_id: str,
                        parts: Sequence[Sequence[tuple[str, int]]]) -> list[dict[str, Any]]:
        from connectors.shipstation.demo import ship_in_parts

        return await ship_in_parts(ctx, int(partner_order_id), parts)


def _version_key(kind: str, record: dict[str, Any]) -> str:
    """A record version's delivery key: a label by its create or void date, a fulfillment
    by its void, delivery or create date."""
    if kind == "shipment":
        version = record.get("voidDate") if record.get("voided") else record.get("createDate")
        return f"shipment:{record.get('shipmentId')}:{version}"
    version = record.get("voidDate") or record.get("deliveryDate") or record.get("createDate")
    return f"fulfillment:{record.get('fulfillmentId')}:{version}"


def _polled(connector: str, key: str, kind: str, record: dict[str, Any],
            orders: list[dict[str, Any]]) -> NewInboxEvent:
    """A polled record with the orders it names, resolved with the rest of its batch, so
    the worker looks nothing up."""
    return NewInboxEvent(connector=connector, delivery_key=key, kind="poll",
                         body=orjson.dumps({"type": kind, "record": record, "orders": orders}))
