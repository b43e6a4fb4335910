"""The Amazon Selling Partner API connector, FBA inbound shipments (`type = "amazon_sp"`;
../shared/partners/amazon.md).

Fulfillment Inbound v0 reads (still live; the v2024-03-20 items carry no received quantity):
the `shipments` feed every 15 minutes asks getShipments for shipments updated in a date range
from its cursor (less `overlap_minutes`) to no later than `end_lag_minutes` before now, every
page; the `receiving` feed reads the items of every shipment still open (SHIPPED, IN_TRANSIT,
DELIVERED, CHECKED_IN, RECEIVING) until it is CLOSED, CANCELLED or DELETED. Each read becomes
an InboundShipment (the gateway keeps the header, every status seen, and per seller SKU the
shipped, received and case quantities: `GET /api/v1/inbound-shipments`). The gateway turns
received increases into receipts on the shipment's transfer order and into the inventory
ledger at this connector's `location` (gateway/stock.py).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, ClassVar

import aiohttp
import orjson
from aiohttp import web

from connectors.amazon_sp.client import ITEMS, ITEMS_BY_SHIPMENT, SHIPMENTS, SpClient, TokenCache
from gateway.config import Config, ConnectorConfig
from gateway.connector import Connector, Feed, Option, PollResult
from gateway.domain.records import InboundItem, InboundShipment, now_iso, parse_iso, utc_iso
from gateway.metrics import Metrics
from gateway.names import CANCEL_ORDER, PUSH_FULFILLMENT, PUSH_ORDER
from storage import InboxEvent, NewInboxEvent

OPEN = ("SHIPPED", "IN_TRANSIT", "DELIVERED", "CHECKED_IN", "RECEIVING")
DONE = ("CLOSED", "CANCELLED", "DELETED")
# Amazon's ShipmentStatus in the gateway's terms (WORKING, READY_TO_SHIP, ERROR: planned)
STAGES = {**dict.fromkeys(OPEN, "open"), "CLOSED": "closed", "CANCELLED": "cancelled",
          "DELETED": "cancelled"}
SANDBOX_CLIENT = ("amzn1.application-oa2-client.sandbox", "sandbox-lwa-secret",
                  "Atzr|sandbox-refresh-token")
SANDBOX_ABOUT = f"""\
An Amazon Selling Partner API stand-in for FBA inbound: the Login with Amazon token endpoint
(/auth/o2/token, refresh-token grant, tokens that expire), getShipments with its query types
and next tokens (the last page's token leads to an empty page; filters repeated with a token
restart at page one), getShipmentItemsByShipmentId cut at 200 items with a token only
getShipmentItems takes, Amazon's error bodies, 403 Unauthorized on an expired token, and a
token bucket per operation (429 QuotaExceeded; x-amzn-RateLimit-Limit on answers).

Credentials: $AMAZON_CLIENT_ID, $AMAZON_CLIENT_SECRET, $AMAZON_REFRESH_TOKEN, or
{SANDBOX_CLIENT[0]} / {SANDBOX_CLIENT[1]} / {SANDBOX_CLIENT[2]} when unset.

Control routes (no auth):
  POST /_sandbox/shipments              {{"ShipmentId"?, "ShipmentName", "items":
                                        [{{"SellerSKU", "QuantityShipped"}}]}} (WORKING)
  POST /_sandbox/shipments/ID/status    {{"status"}}: advance it (SHIPPED, ..., CLOSED)
  POST /_sandbox/shipments/ID/receive   {{"SKU": units}}: Amazon scans more in
                                        (each takes "ago_minutes": changed that long ago)
  POST /_sandbox/tokens/expire          every token issued so far stops working
  POST /_sandbox/throttle               {{"operation", "rate", "burst"}}
  POST /_sandbox/faults; GET /_sandbox/state, /_sandbox/requests
"""


def _amazon_time(iso: str) -> str:
    """ISO 8601 in UTC to the second, with Z, as the date-range filters take it."""
    return parse_iso(iso).strftime("%Y-%m-%dT%H:%M:%SZ")


class AmazonSpConnector(Connector):
    options: ClassVar[tuple[Option, ...]] = (
        Option("client_id_env", str, help="variable holding the LWA client id"),
        Option("client_secret_env", str, help="variable holding the LWA client secret"),
        Option("refresh_token_env", str, help="variable holding the seller's refresh token"),
        Option("marketplace_id", str, "ATVPDKIKX0DER", help="e.g. ATVPDKIKX0DER (US)"),
        Option("token_url", str, "https://api.amazon.com/auth/o2/token",
               help="Login with Amazon's token endpoint"),
        Option("refresh_margin_seconds", float, 120.0, minimum=0.0,
               help="a cached access token is refreshed this long before it expires"),
        Option("request_timeout_seconds", float, 30.0, minimum=0.1),
        Option("max_rate_limit_waits", int, 10, minimum=0, maximum=100),
        Option("shipments_rate", float, 2.0, minimum=0.01, help="getShipments per second"),
        Option("shipments_burst", int, 30, minimum=1),
        Option("items_rate", float, 2.0, minimum=0.01,
               help="getShipmentItems(ByShipmentId) per second, each"),
        Option("items_burst", int, 30, minimum=1),
        Option("overlap_minutes", float, 15.0, minimum=0.0,
               help="each shipments poll starts this long before the previous one ended"),
        Option("end_lag_minutes", float, 2.0, minimum=0.0,
               help="a date range ends no later than this long before now"),
        Option("lookback_days", float, 30.0, minimum=0.0,
               help="the first shipments poll looks this far back"),
        Option("location", str, "", help="the inventory ledger's location for stock at this"
               " network (default: the connector's name)"),
        Option("sync_shipments", bool, True, help="the shipments feed"),
        Option("auto_receive", bool, True, help="the receiving feed"),
    )
    feeds: ClassVar[tuple[Feed, ...]] = (
        Feed("shipments", 15.0, toggle="sync_shipments",
             description="inbound shipments updated in a date range from the cursor"),
        Feed("receiving", 15.0, toggle="auto_receive",
             description="the items (shipped, received) of every shipment still open"),
    )
    produces: ClassVar[tuple[type, ...]] = (InboundShipment,)
    unsupported: ClassVar[Mapping[str, str]] = {
        PUSH_ORDER: "Amazon FBA inbound receives stock; it fulfils no orders through the"
                    " gateway",
        CANCEL_ORDER: "no orders are placed with Amazon through the gateway",
        PUSH_FULFILLMENT: "Amazon takes no fulfilment updates through this connector",
    }
    sandbox_port = 8087
    sandbox_about = SANDBOX_ABOUT

    def __init__(self, config: ConnectorConfig, app_config: Config,
                 session: aiohttp.ClientSession, metrics: Metrics, **contract: Any) -> None:
        super().__init__(config, app_config, session, metrics, **contract)
        s = self.settings
        self.tokens = TokenCache(
            session, s["token_url"], app_config.secret(s["client_id_env"]),
            app_config.secret(s["client_secret_env"]), app_config.secret(s["refresh_token_env"]),
            s["refresh_margin_seconds"], aiohttp.ClientTimeout(total=s["request_timeout_seconds"]))

        def bucket(rate: float, burst: int, operation: str) -> Any:
            # a token bucket as a window: the burst, refilled at the rate
            return self.rate_budget(burst, burst / rate, part=operation)

        self.budgets = {SHIPMENTS: bucket(s["shipments_rate"], s["shipments_burst"], SHIPMENTS),
                        ITEMS_BY_SHIPMENT: bucket(s["items_rate"], s["items_burst"],
                                                  ITEMS_BY_SHIPMENT),
                        ITEMS: bucket(s["items_rate"], s["items_burst"], ITEMS)}
        self.client = SpClient(session, config.base_url, self.tokens, self.budgets,
                               timeout_seconds=s["request_timeout_seconds"],
                               max_rate_waits=s["max_rate_limit_waits"],
                               on_response=self._count)

    def _count(self, status: int) -> None:
        self.metrics.partner_requests.labels(self.name, str(status)).inc()
        if status == 429:
            self.metrics.partner_429.labels(self.name).inc()

    def status(self) -> dict[str, Any]:
        return {"token_refreshes": self.tokens.refreshes,
                "operations": {op: b.state() for op, b in self.budgets.items()},
                "rate_limits_stated": dict(self.client.observed_limits)}

    # polling

    def date_range(self, cursor: str | None, now: str) -> tuple[str, str]:
        """[after, before]: from the cursor less the overlap (or the lookback), to no later
        than end_lag before now."""
        s = self.settings
        before = parse_iso(now) - timedelta(minutes=s["end_lag_minutes"])
        after = parse_iso(cursor) - timedelta(minutes=s["overlap_minutes"]) if cursor \
            else parse_iso(now) - timedelta(days=s["lookback_days"])
        return utc_iso(min(after, before)), utc_iso(before)

    async def poll(self, feed: Feed, cursor: str | None) -> PollResult:
        marketplace = self.settings["marketplace_id"]
        if feed.name == "shipments":
            after, before = self.date_range(cursor, now_iso())
            shipments = await self.client.shipments(marketplace, {
                "QueryType": "DATE_RANGE", "LastUpdatedAfter": _amazon_time(after),
                "LastUpdatedBefore": _amazon_time(before)})
            events = [self._event("shipment", {"shipment": s}) for s in shipments
                      if s.get("ShipmentId")]
            return PollResult(events, before, {"shipments": len(events),
                                               "window": [after, before]})
        # open ones, and one closed since its items were last read (its last receipts)
        to_read = [(s.id, s.status) async for s in self.stored_inbound_shipments(
                   (*OPEN, "CLOSED")) if s.status in OPEN or not s.items_seen_at
                   or not s.status_history or s.items_seen_at < s.status_history[-1].at]
        events = []
        for shipment_id, status in to_read:
            items = await self.client.items(marketplace, shipment_id)
            # the status it was read in makes the read after closing a delivery of its own,
            # even with the items unchanged (the gateway closes the purchase order on it)
            events.append(self._event("items", {"shipment_id": shipment_id, "status": status,
                                                "items": items}))
        return PollResult(events, cursor or "", {"open": len(to_read)})

    def _event(self, kind: str, body: Mapping[str, Any]) -> NewInboxEvent:
        raw = orjson.dumps({"kind": kind, **body}, option=orjson.OPT_SORT_KEYS)
        key = body.get("shipment", {}).get("ShipmentId") or body.get("shipment_id")
        return NewInboxEvent(self.name, f"{kind}:{key}:{hashlib.sha256(raw).hexdigest()[:16]}",
                             "poll", raw)

    async def normalize(self, event: InboxEvent) -> Sequence[Any]:
        """A shipments-feed read gives the header (status, name, centre), a receiving read
        the items: each an InboundShipment the gateway merges into what it keeps."""
        body = orjson.loads(event.body)
        at = event.received_at
        if body["kind"] == "shipment":
            s = body["shipment"]
            status = str(s.get("ShipmentStatus") or "") or None
            return [InboundShipment(
                source=self.name, external_id=str(s["ShipmentId"]), observed_at=at,
                status=status, name=s.get("ShipmentName"),
                destination=s.get("DestinationFulfillmentCenterId"),
                stage=STAGES.get(status, "planned") if status else None)]
        items: dict[str, InboundItem] = {}
        for i in body["items"]:
            sku = str(i.get("SellerSKU") or "")
            if not sku:
                continue
            before = items.get(sku)  # a SKU listed twice: its units added up
            items[sku] = InboundItem(
                sku, int(i.get("QuantityShipped") or 0) + (before.shipped if before else 0),
                int(i.get("QuantityReceived") or 0) + (before.received if before else 0),
                int(i.get("QuantityInCase") or 0))
        return [InboundShipment(source=self.name, external_id=str(body["shipment_id"]),
                                observed_at=at, items=tuple(items.values()))]

    # sandboxes

    @classmethod
    async def demo(cls, ctx: Any) -> None:
        from connectors.amazon_sp.demo import run

        await run(ctx)

    @classmethod
    def sandbox(cls, config: ConnectorConfig, app_config: Config) -> web.Application:
        from connectors.amazon_sp.sandbox import create_app

        s = config.settings
        return create_app(app_config.secret(s["client_id_env"]),
                          app_config.secret(s["client_secret_env"]),
                          app_config.secret(s["refresh_token_env"]))

    @classmethod
    def standalone_sandbox(cls) -> web.Application:
        from connectors.amazon_sp.sandbox import create_app

        return create_app(os.environ.get("AMAZON_CLIENT_ID", SANDBOX_CLIENT[0]),
                          os.environ.get("AMAZON_CLIENT_SECRET", SANDBOX_CLIENT[1]),
                          os.environ.get("AMAZON_REFRESH_TOKEN", SANDBOX_CLIENT[2]))
