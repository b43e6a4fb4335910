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
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import aiohttp
import orjson
from aiohttp import web
from yarl import URL

from connectors.shipstation import normalize, push
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
from gateway.errors import BadRequest, PartnerRejected, WebhookRejected
from gateway.metrics import Metrics
from gateway.names import CANCEL_ORDER, PUSH_ORDER
from storage import InboxEvent, NewInboxEvent, OutboxMessage

SHIPMENT_EVENTS = {"SHIP_NOTIFY", "ITEM_SHIP_NOTIFY"}
FULFILLMENT_EVENTS = {"FULFILLMENT_SHIPPED"}
IGNORED_EVENTS = {"ORDER_NOTIFY", "ITEM_ORDER_NOTIFY", "FULFILLMENT_REJECTED"}
RESOURCE_PATHS = ("/shipments", "/fulfillments")
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
_ORDER_CACHE_SIZE = 2048
ORDER_CACHE_SECONDS = 300.0


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
        self.page_size = settings["page_size"]
        self.overlap = timedelta(minutes=settings["poll_overlap_minutes"])
        self.initial_lookback = timedelta(hours=settings["initial_lookback_hours"])
        self.budget = self.rate_budget(settings["rate_limit_per_minute"],
                                       settings["rate_limit_window_seconds"])
        self.client = ShipStationClient(
            session, config.base_url, basic_auth(key, secret), self.budget,
            timeout_seconds=settings["request_timeout_seconds"],
            max_rate_waits=settings["max_rate_limit_waits"], on_response=self._count)
        # Orders looked up for their references; kept briefly, since a later merge or split
        # changes an order's mergedIds and parentId.
        self._orders: OrderedDict[int, tuple[float, dict[str, Any]]] = OrderedDict()

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
        try:
            self.resource_url(body.get("resource_url"))
        except PartnerRejected as exc:
            raise BadRequest(exc.message) from None
        return "sha256:" + hashlib.sha256(request.body).hexdigest()

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

    async def _order(self, order_id: Any) -> dict[str, Any] | None:
        try:
            key = int(order_id)
        except (TypeError, ValueError):
            return None
        cached = self._orders.get(key)
        if cached and time.monotonic() - cached[0] < ORDER_CACHE_SECONDS:
            self._orders.move_to_end(key)
            return cached[1]
        order = await self.client.get(self.client.url(f"/orders/{key}"))
        if not isinstance(order, dict):
            return None
        self._orders[key] = (time.monotonic(), order)
        while len(self._orders) > _ORDER_CACHE_SIZE:
            self._orders.popitem(last=False)
        return order

    async def _related(self, record: dict[str, Any], order: dict[str, Any] | None
                       ) -> list[dict[str, Any]]:
        """A split child's parent and a merge survivor's absorbed orders, by lookup."""
        if order is None:
            return []
        options = order.get("advancedOptions") or {}
        ids = [options.get("parentId"), *(options.get("mergedIds") or [])]
        related = [order]
        for order_id in ids:
            if order_id:
                parent = await self._order(order_id)
                if parent:
                    related.append(parent)
        return related

    def _needs_order(self, record: dict[str, Any]) -> bool:
        options = record.get("advancedOptions")
        if isinstance(options, dict) and options.get("mergedOrSplit") is False:
            return False
        return bool(record.get("orderId"))

    async def _shipment(self, record: dict[str, Any]) -> Shipment:
        order = await self._order(record.get("orderId")) if self._needs_order(record) else None
        return normalize.shipment(self.name, record, await self._related(record, order))

    async def _fulfillment(self, record: dict[str, Any]) -> Shipment:
        order = await self._order(record.get("orderId"))
        related = await self._related(record, order)
        return normalize.fulfillment(self.name, record, order, related[1:])

    async def normalize(self, event: InboxEvent) -> list[Shipment]:
        body = orjson.loads(event.body)
        if event.kind == "poll":
            kind, record = body["type"], body["record"]
            if kind == "shipment":
                return [await self._shipment(record)]
            if kind == "fulfillment":
                return [await self._fulfillment(record)]
            raise ValueError(f"unknown polled record type {kind!r}")
        resource_type = body.get("resource_type")
        if resource_type in IGNORED_EVENTS:
            return []
        url = self.resource_url(body.get("resource_url"))
        if resource_type in SHIPMENT_EVENTS or url.path == "/shipments":
            # The URL asks for no items (includeShipmentItems=False); we need them.
            url = url.update_query(includeShipmentItems="true")
            return [await self._shipment(r) async for r in self.client.pages(url, {}, "shipments")]
        if resource_type in FULFILLMENT_EVENTS or url.path == "/fulfillments":
            return [await self._fulfillment(r)
                    async for r in self.client.pages(url, {}, "fulfillments")]
        return []

    # polling

    async def poll(self, feed: Feed, cursor: str | None) -> PollResult:
        """Everything created or voided since the cursor (minus the overlap), up to now."""
        now = datetime.now(UTC)
        since = parse_iso(orjson.loads(cursor)["until"]) if cursor else now - self.initial_lookback
        # No end filter: the window is open to "now", and the overlap covers what the next
        # poll must see again (a label indexed late, a timestamp truncated to the second).
        start = utc_to_pacific(since - self.overlap)
        records: list[NewInboxEvent] = []
        stats: dict[str, Any] = {"window_start_pacific": start}
        shipments = self.client.url("/shipments")
        common = {"includeShipmentItems": "true", "pageSize": self.page_size}
        seen: set[str] = set()
        for label, params in (("created", {"createDateStart": start}),
                              ("voided", {"voidDateStart": start})):
            count = 0
            async for record in self.client.pages(shipments, {**common, **params}, "shipments"):
                version = record.get("voidDate") if record.get("voided") else record.get("createDate")
                key = f"shipment:{record.get('shipmentId')}:{version}"
                count += 1
                if key not in seen:
                    seen.add(key)
                    records.append(_polled(self.name, key, "shipment", record))
            stats[f"shipments_{label}"] = count
        count = 0
        async for record in self.client.pages(
                self.client.url("/fulfillments"),
                {"createDateStart": start, "pageSize": self.page_size},
                "fulfillments"):
            version = record.get("voidDate") or record.get("deliveryDate") or record.get("createDate")
            count += 1
            records.append(_polled(self.name, f"fulfillment:{record.get('fulfillmentId')}:{version}",
                                   "fulfillment", record))
        stats["fulfillments"] = count
        return PollResult(records, orjson.dumps({"until": utc_iso(now)}).decode(), stats)

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


def _polled(connector: str, key: str, kind: str, record: dict[str, Any]) -> NewInboxEvent:
    return NewInboxEvent(connector=connector, delivery_key=key, kind="poll",
                         body=orjson.dumps({"type": kind, "record": record}))
