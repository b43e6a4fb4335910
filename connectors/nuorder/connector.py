"""The NuOrder connector (B2B wholesale; ../shared/partners/nuorder.md).

NuOrder sends nothing out, so everything comes by polling, each part a feed with its toggle:
`companies` (daily, from a persisted "modified since" cursor), `products` and `locations`
(the catalogue and the warehouses, kept as partner records), `orders` (every 15 minutes:
approved orders in a date range from the cursor with an overlap, then each order the gateway
still tracks, for cancellations and changes). An approved order becomes a partner order, so an
FO on the channel whose source_connector is this connector; once it is, the gateway sends
`acknowledge_order` and NuOrder marks it processed (the usual ERP loop).

Out: each shipment allocated to an FO from NuOrder is written to the order (the endpoint is
UNCONFIRMED: api.py), a void withdraws it, the order moves to shipped when the FO is
fulfilled; company writes; inventory levels as replenishments, then a flag refresh.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, ClassVar

import aiohttp
import orjson
from aiohttp import web

from connectors.nuorder import normalize
from connectors.nuorder.api import NuOrderApi
from connectors.nuorder.signing import RFC5849, STYLES, Credentials, authorization
from connectors.nuorder.skus import RULES, UPC, SkuMap, sku_of, split_line_id
from gateway import logs
from gateway.config import Config, ConnectorConfig
from gateway.connector import Connector, Feed, Option, PollResult, RecordKind
from gateway.domain.records import now_iso, parse_iso
from gateway.errors import (
    BadRequest,
    Conflict,
    PartnerRateLimited,
    PartnerRejected,
    PartnerUnavailable,
    for_status,
)
from gateway.metrics import Metrics
from gateway.names import (
    ACKNOWLEDGE_ORDER,
    CANCEL_FULFILLMENT,
    PUSH_FULFILLMENT,
    PUSH_INVENTORY,
    PUSH_ORDER,
)
from storage import InboxEvent, NewInboxEvent, OutboxMessage

log = logs.get("connectors.nuorder")
SANDBOX_CREDENTIALS = Credentials("sandbox-consumer-key", "sandbox-consumer-secret",
                                  "sandbox-token", "sandbox-token-secret")
SANDBOX_ABOUT = f"""\
A NuOrder stand-in: OAuth 1.0a (HMAC-SHA1) checked for real, in both signing styles
(RFC 5849, and the older hex digest), against the secrets below; the one-time handshake
(GET /api/initiate, approval, GET /api/token); companies (409 on a duplicate code), products,
warehouses, orders with NuOrder's statuses, shipments, replenishments and flag refreshes;
NuOrder's error bodies {{"code", "message"}}; faults on command.

Credentials: $NUORDER_CONSUMER_KEY, $NUORDER_CONSUMER_SECRET, $NUORDER_TOKEN and
$NUORDER_TOKEN_SECRET, or {SANDBOX_CREDENTIALS.consumer_key} / {SANDBOX_CREDENTIALS.consumer_secret} /
{SANDBOX_CREDENTIALS.token} / {SANDBOX_CREDENTIALS.token_secret} when unset.

Control routes (no auth):
  POST /_sandbox/approve     approve the pending application: answers its verifier
  GET  /_sandbox/requests    the request log
  GET  /_sandbox/state       what NuOrder holds and what it was sent
  POST /_sandbox/orders, /_sandbox/orders/ID, /_sandbox/companies, /_sandbox/products,
       /_sandbox/warehouses  add or change NuOrder's data
  POST /_sandbox/faults      {{"path", "status", "times", "delay_seconds"}}
"""
# Clocks differ: a "modified since" cursor starts this much before the previous run began.
CLOCK_SKEW = timedelta(minutes=5)
ORDER_STATUSES_TAKEN = ("approved",)  # only these come in as new orders


class NuOrderError:
    """What every NuOrder failure carries: the call, NuOrder's status and its message."""

    call: str
    nuorder_status: int | None
    nuorder_message: str


class NuOrderRejected(PartnerRejected, NuOrderError):
    pass


class NuOrderUnavailable(PartnerUnavailable, NuOrderError):
    pass


class NuOrderRateLimited(PartnerRateLimited, NuOrderError):
    pass


def nuorder_error(call: str, status: int | None, message: str) -> Exception:
    text = f"{call}: HTTP {status}: {message}" if status else f"{call}: {message}"
    if status == 429:
        exc: Any = NuOrderRateLimited(text, retry_after=0.0)
    elif status is not None and (isinstance(for_status(status, ""), PartnerRejected)
                                 or status == 409):  # a taken code stays taken
        exc = NuOrderRejected(text, status)
    else:
        exc = NuOrderUnavailable(text)
    exc.call, exc.nuorder_status, exc.nuorder_message = call, status, message
    return exc


def _toggle(name: str, what: str) -> Option:
    return Option(name, bool, True, help=what)


class NuOrderConnector(Connector):
    options: ClassVar[tuple[Option, ...]] = (
        Option("consumer_key_env", str, help="variable holding the consumer key"),
        Option("consumer_secret_env", str, help="variable holding the consumer secret"),
        Option("token_env", str, help="variable holding the token from the handshake"),
        Option("token_secret_env", str, help="variable holding the token secret"),
        Option("signature_style", str, RFC5849, choices=STYLES,
               help="rfc5849 (oauthlib, base64), or hex (older clients' style; UNCONFIRMED)"),
        Option("request_timeout_seconds", float, 30.0, minimum=0.1),
        _toggle("sync_companies", "poll companies and send company writes"),
        _toggle("fetch_products", "poll products (the SKU map comes from them)"),
        _toggle("show_inventory_locations", "poll warehouses"),
        _toggle("import_orders", "poll approved orders and the orders still tracked"),
        _toggle("push_fulfillments", "write shipments and the shipped status to NuOrder"),
        _toggle("push_inventory", "send inventory levels as replenishments"),
        Option("mark_processed", bool, True,
               help="mark an order processed in NuOrder once its FO exists"),
        Option("sku", str, UPC, choices=RULES,
               help="a size's SKU: its UPC, or style_number-color-size"),
        Option("order_overlap_minutes", float, 60.0, minimum=0.0,
               help="each orders poll starts this long before the previous one"),
        Option("order_lookback_days", float, 30.0, minimum=0.0,
               help="the first orders poll lists approved orders modified this far back"),
        Option("max_order_reads", int, 500, minimum=1, maximum=100_000,
               help="tracked orders read again per orders poll, at most (they take turns)"),
    )
    feeds: ClassVar[tuple[Feed, ...]] = (
        Feed("companies", 1440.0, toggle="sync_companies",
             description="companies created or modified since the previous run"),
        Feed("products", 60.0, toggle="fetch_products",
             description="products with style, color, season, sizes and UPCs, prices"),
        Feed("locations", 1440.0, toggle="show_inventory_locations",
             description="warehouses"),
        Feed("orders", 15.0, toggle="import_orders",
             description="approved orders, then each order still tracked"),
    )
    produces: ClassVar[tuple[type, ...]] = normalize.PRODUCES
    record_kinds: ClassVar[tuple[RecordKind, ...]] = (
        RecordKind("companies", frozenset({"create", "update", "archive"}),
                   "buyers' companies (retailers), by NuOrder id; code unique"),
        RecordKind("products", frozenset(), "the catalogue (read only)"),
        RecordKind("locations", frozenset(), "warehouses (read only)"),
        RecordKind("orders", frozenset(), "NuOrder's orders, each as last seen (read only)"),
    )
    operations: ClassVar[frozenset[str]] = frozenset(
        {ACKNOWLEDGE_ORDER, PUSH_FULFILLMENT, CANCEL_FULFILLMENT, PUSH_INVENTORY})
    unsupported: ClassVar[Mapping[str, str]] = {
        PUSH_ORDER: "orders are placed in NuOrder by buyers and brand users; the gateway"
                    " takes them from NuOrder and never creates them there",
        "create:orders": "orders are placed in NuOrder by buyers and brand users; the gateway"
                         " never creates them there",
        "delete:orders": "NuOrder's API deletes no orders; cancel the order in NuOrder (its FO"
                         " is cancelled on the next poll)",
        "hold:orders": "NuOrder has no hold status for orders; hold the FO's push in the"
                       " channel instead",
        "list:fulfillment_orders": "NuOrder keeps no fulfilment orders of its own; the"
                                   " gateway's are at /api/v1/fulfillment-orders",
    }
    sandbox_port = 8082
    sandbox_about = SANDBOX_ABOUT
    cli_about = ("NuOrder's own commands: `handshake` gets the token and token secret the"
                 " connector signs with (once, with a person approving it in NuOrder).")

    def __init__(self, config: ConnectorConfig, app_config: Config,
                 session: aiohttp.ClientSession, metrics: Metrics, **contract: Any) -> None:
        super().__init__(config, app_config, session, metrics, **contract)
        s = self.settings
        self.credentials = Credentials(
            app_config.secret(s["consumer_key_env"]), app_config.secret(s["consumer_secret_env"]),
            app_config.secret(s["token_env"]), app_config.secret(s["token_secret_env"]))
        self.style = s["signature_style"]
        self.base_url = config.base_url
        self.timeout = aiohttp.ClientTimeout(total=s["request_timeout_seconds"])
        self.api = NuOrderApi(self.request)
        self._limited: deque[float] = deque(maxlen=10_000)  # when NuOrder answered 429

    def status(self) -> dict[str, Any]:
        hour_ago = time.monotonic() - 3600
        return {"rate_limited_last_hour": sum(1 for at in self._limited if at >= hour_ago)}

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        """One signed call; NuOrder's error (the call, status and message; never a secret or
        the signature) logged and raised as the error that says whether to retry."""
        url = self.base_url + path
        call = f"{method} {path.partition('?')[0]}"
        headers = {"Authorization": authorization(method, url, self.credentials, self.style),
                   "Content-Type": "application/json"}
        data = orjson.dumps(body) if body is not None else None
        try:
            async with self.session.request(method, url, data=data, headers=headers,
                                            timeout=self.timeout) as resp:
                payload, status = await resp.read(), resp.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning("nuorder.unreachable", connector=self.name, call=call,
                        error=type(exc).__name__)
            raise nuorder_error(call, None, f"{type(exc).__name__}: {exc}") from exc
        if status >= 300:
            try:
                message = str(orjson.loads(payload).get("message", ""))
            except (orjson.JSONDecodeError, AttributeError):
                message = payload[:300].decode(errors="replace")
            log.warning("nuorder.error", connector=self.name, call=call, status=status,
                        message=message)
            if status == 429:
                self._limited.append(time.monotonic())
            raise nuorder_error(call, status, message)
        try:
            return orjson.loads(payload) if payload else None
        except orjson.JSONDecodeError:
            raise nuorder_error(call, status, "the answer is not JSON") from None

    def refusal(self, operation: str) -> str | None:
        s = self.settings
        toggles = {PUSH_FULFILLMENT: "push_fulfillments", CANCEL_FULFILLMENT: "push_fulfillments",
                   PUSH_INVENTORY: "push_inventory", ACKNOWLEDGE_ORDER: "mark_processed"}
        toggle = toggles.get(operation) or ("sync_companies" if operation.endswith(":companies")
                                            else None)
        if toggle and not s[toggle]:
            return f"{toggle} = false"
        if operation == ACKNOWLEDGE_ORDER and not s["import_orders"]:
            return "import_orders = false"
        return super().refusal(operation)

    async def perform(self, operation: str, message: OutboxMessage) -> Mapping[str, Any]:
        """A fulfilment update queued before its toggle was turned off is let go, not sent
        and not dead-lettered: the toggle says this part does not push."""
        if operation in (PUSH_FULFILLMENT, CANCEL_FULFILLMENT, PUSH_INVENTORY,
                         ACKNOWLEDGE_ORDER):
            reason = self.refusal(operation)
            if reason is not None:
                log.info("nuorder.skipped", connector=self.name, operation=operation,
                         reason=reason)
                return {"skipped": reason}
        return await super().perform(operation, message)

    # polling

    async def poll(self, feed: Feed, cursor: str | None) -> PollResult:
        if feed.name == "orders":
            return await self._poll_orders(cursor)
        started = now_iso()
        if feed.name == "companies":
            since = cursor or None
            found = _latest_by(_latest_by(await self.api.companies_modified_since(since),
                                          "_id"), "code")
            next_cursor = _nuorder_time(parse_iso(started) - CLOCK_SKEW)
        elif feed.name == "products":
            found, next_cursor = await self.api.products(), ""
        else:
            found, next_cursor = await self.api.warehouses(), ""
        events = [self._event(feed.name, item) for item in found if item.get("_id")]
        return PollResult(events, next_cursor, {"seen": len(found)})

    def _event(self, kind: str, item: Mapping[str, Any]) -> NewInboxEvent:
        body = orjson.dumps({"kind": kind, "record": item})
        version = item.get("modified_on") or hashlib.sha256(body).hexdigest()[:16]
        return NewInboxEvent(self.name, f"{kind}:{item['_id']}:{version}", "poll", body)

    async def sku_map(self) -> SkuMap:
        """SKU <-> product and size, from the products the gateway keeps (archived ones
        included: an order may name a product no longer sold)."""
        return SkuMap(self.settings["sku"],
                      [dict(r.fields, _id=r.external_id)
                       async for r in self.stored_records("products")])

    def resolve(self, order: Mapping[str, Any], skus: SkuMap) -> dict[str, str | None]:
        """Each wanted product-and-size's SKU: from the kept products, else from the order's
        own line (its UPC, or its style, color and size); None when neither has one."""
        found = {}
        for key, wanted in normalize.wanted_sizes(order).items():
            product_id, size = split_line_id(key)
            found[key] = skus.sku(product_id, size) or sku_of(
                self.settings["sku"], wanted["product"], wanted["size"])
        return found

    async def _poll_orders(self, cursor: str | None) -> PollResult:
        state = orjson.loads(cursor) if cursor else {}
        started = now_iso()
        if state.get("since"):
            after = parse_iso(state["since"]) - timedelta(
                minutes=self.settings["order_overlap_minutes"])
        else:
            after = parse_iso(started) - timedelta(days=self.settings["order_lookback_days"])
        seen: dict[str, dict[str, Any]] = {}
        for order in await self.api.approved_orders(_nuorder_time(after),
                                                    _nuorder_time(parse_iso(started))):
            if order.get("status") in ORDER_STATUSES_TAKEN and order.get("_id"):
                seen[str(order["_id"])] = order
        # Held orders are read again each poll (they are few); the orders the gateway still
        # tracks, at most `max_order_reads` a poll, taking turns from where the last poll
        # stopped, so thousands of open orders cost a bounded number of reads per poll.
        held_before = [i for i in state.get("held", []) if i not in seen]
        tracked = [link.partner_order_id async for link in self.watched_links("origin")
                   if link.partner_order_id and link.partner_order_id not in seen
                   and link.partner_order_id not in held_before]
        start = state.get("tracked_from", 0) if state.get("tracked_from", 0) < len(tracked) else 0
        turn = (tracked[start:] + tracked[:start])[:self.settings["max_order_reads"]]
        tracked_from = (start + len(turn)) % len(tracked) if tracked else 0
        for order_id in dict.fromkeys(held_before + turn):
            try:
                seen[order_id] = await self.api.order(order_id)
            except PartnerRejected as exc:
                if getattr(exc, "nuorder_status", None) != 404:
                    raise
                log.warning("nuorder.order_gone", connector=self.name, order_id=order_id)
        skus = await self.sku_map()
        events, held = [], []
        for order_id, order in seen.items():
            resolved = self.resolve(order, skus)
            if order.get("status") in ORDER_STATUSES_TAKEN and None in resolved.values():
                held.append(order_id)
            fingerprint = hashlib.sha256(orjson.dumps(
                resolved, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]
            events.append(NewInboxEvent(
                self.name, f"orders:{order_id}:{order.get('modified_on')}:{fingerprint}",
                "poll", orjson.dumps({"kind": "order", "order": order, "skus": resolved})))
        next_cursor = orjson.dumps({"since": started, "held": held,
                                    "tracked_from": tracked_from}).decode()
        return PollResult(events, next_cursor, {"orders": len(seen), "held": len(held),
                                                "tracked": len(tracked),
                                                "tracked_read": len(turn)})

    async def normalize(self, event: InboxEvent) -> Sequence[Any]:
        body = orjson.loads(event.body)
        at = event.received_at
        if body["kind"] == "order":
            order = body["order"]
            return [normalize.partner_order(self.name, order, body["skus"], at),
                    normalize.record(self.name, "orders", order, at)]
        return [normalize.record(self.name, body["kind"], body["record"], at)]

    # operations

    async def acknowledge_order(self, message: OutboxMessage) -> dict[str, Any]:
        """Mark the order processed, so the next poll does not list it as approved."""
        order_id = message.payload["partner_order_id"]
        try:
            order = await self.api.mark_processed(order_id)
        except PartnerRejected:
            order = await self.api.order(order_id)  # moved on meanwhile: say where it is
            if order.get("status") == "cancelled":  # its FO follows on the next poll
                return {"skipped": "cancelled in NuOrder before it was marked processed"}
            if order.get("status") not in ("processed", "shipped"):
                raise
        return {"status": order.get("status")}

    async def push_fulfillment(self, message: OutboxMessage) -> dict[str, Any]:
        payload = message.payload
        order_id = payload["partner_order_id"]
        if payload.get("type") == "status_changed":
            if payload.get("new_status") != "fulfilled":
                return {"skipped": f"NuOrder has no status for {payload.get('new_status')}"}
            order = await self.api.order(order_id)
            if order.get("status") != "shipped":
                order = await self.api.mark_shipped(order_id)
            return {"status": order.get("status")}
        external_id = f"{payload['fulfillment_order_id']}:{payload['shipment_id']}"
        existing = await self._shipment(order_id, external_id)
        if existing is not None:  # a retry after an answer that was lost
            return {"partner_fulfillment_id": existing["_id"], "repeated": True}
        shipment = payload.get("shipment") or {}
        lines = []
        for line in payload["lines"]:
            product_id, size = split_line_id(line["line_id"])
            lines.append({"product_id": product_id, "size": size, "quantity": line["quantity"],
                          "sku": line["sku"]})
        written = await self.api.add_shipment(order_id, {
            "external_id": external_id, "carrier": shipment.get("carrier"),
            "service": shipment.get("service"),
            "tracking_numbers": list(shipment.get("tracking_numbers") or []),
            "shipped_at": shipment.get("shipped_at"), "lines": lines})
        return {"partner_fulfillment_id": written["_id"]}

    async def _shipment(self, order_id: str, external_id: str) -> dict[str, Any] | None:
        order = await self.api.order(order_id)
        return next((s for s in order.get("shipments") or []
                     if s.get("external_id") == external_id and not s.get("voided")), None)

    async def cancel_fulfillment(self, message: OutboxMessage) -> dict[str, Any]:
        payload = message.payload
        order_id = payload["partner_order_id"]
        shipment_id = payload.get("partner_fulfillment_id")
        if not shipment_id:
            found = await self._shipment(
                order_id, f"{payload['fulfillment_order_id']}:{payload['shipment_id']}")
            if found is None:
                return {"cancelled": True, "found": False}
            shipment_id = found["_id"]
        try:
            await self.api.remove_shipment(order_id, shipment_id)
        except PartnerRejected as exc:
            if getattr(exc, "nuorder_status", None) != 404:
                raise
        return {"cancelled": True, "partner_fulfillment_id": shipment_id}

    # partner records written back

    async def check_write(self, kind: str, write: str, external_id: str | None,
                          fields: Mapping[str, Any]) -> None:
        if kind != "companies":
            return
        currency = fields.get("currency_code")
        if currency is not None and not (isinstance(currency, str) and len(currency) == 3
                                         and currency.isalpha() and currency.isupper()):
            raise BadRequest(f"fields.currency_code: an ISO 4217 code such as USD, got"
                             f" {currency!r}")
        addresses = fields.get("addresses")
        if addresses is not None and not (isinstance(addresses, list)
                                          and all(isinstance(a, dict) for a in addresses)):
            raise BadRequest("fields.addresses: a list of address objects")
        if write == "create":
            missing = [f for f in ("name", "code") if not fields.get(f)]
            if missing:
                raise BadRequest(f"fields.{missing[0]}: required to create a NuOrder company")
            async for company in self.stored_records("companies"):
                if company.fields.get("code") == fields["code"]:
                    raise Conflict(f"NuOrder company {company.external_id} already has code"
                                   f" {fields['code']!r}")
        elif external_id is not None and "code" in fields:
            stored = await self.stored_record(kind, external_id)
            if stored is not None and stored.fields.get("code") != fields["code"]:
                raise BadRequest("fields.code: a company's code cannot be changed through the"
                                 " gateway (NuOrder keys its updates by code)")

    async def write_record(self, kind: str, write: str,
                           message: OutboxMessage) -> Mapping[str, Any]:
        fields = dict(message.payload["fields"])
        if write == "create":
            company = await self.api.create_company({"archived": False, **fields})
        else:
            stored = await self.stored_record(kind, message.payload["id"])
            code = stored.fields.get("code") if stored is not None else None
            if not code:
                raise NuOrderRejected(f"company {message.payload['id']} has no code the"
                                      " gateway knows; sync companies first")
            if write == "archive":
                fields["archived"] = True
            company = await self.api.upsert_company({**fields, "code": code})
        return {"id": company["_id"], **{k: v for k, v in company.items() if k != "_id"},
                "updated_at": normalize.timestamp(company.get("modified_on"), now_iso()),
                "archived": bool(company.get("archived"))}

    # inventory

    async def _locations(self) -> dict[str, str]:
        """Every name a warehouse goes by (its id, code and name) -> its id."""
        found: dict[str, str] = {}
        async for location in self.stored_records("locations"):
            if location.archived:
                continue
            for alias in (location.external_id, location.fields.get("code"),
                          location.fields.get("name")):
                if alias:
                    found.setdefault(str(alias), location.external_id)
        return found

    async def check_inventory(self, levels: Sequence[Mapping[str, Any]]) -> list[str]:
        return _inventory_problems(levels, await self.sku_map(), await self._locations())

    async def push_inventory(self, message: OutboxMessage) -> dict[str, Any]:
        """Levels (already consolidated) per warehouse as replenishments: immediate
        availability without a date, future stock (prebook when flagged) with it; then the
        inventory flags of the products touched are refreshed. Levels, not deltas: sending
        them again sets the same levels."""
        levels = message.payload["levels"]
        skus, locations = await self.sku_map(), await self._locations()  # read once
        problems = _inventory_problems(levels, skus, locations)
        if problems:  # the catalogue changed since the levels were checked
            raise NuOrderRejected("; ".join(problems))
        by_warehouse: dict[str, list[dict[str, Any]]] = {}
        products: dict[str, None] = {}
        for level in levels:
            size = skus.size_of(str(level["sku"]))
            assert size is not None and size.sku_id
            products[size.product_id] = None
            by_warehouse.setdefault(locations[str(level["warehouse"])], []).append({
                "warehouse_id": locations[str(level["warehouse"])], "sku_id": size.sku_id,
                "display_name": level["sku"], "prebook": bool(level.get("prebook")),
                "period_start": level.get("date"), "period_end": None,
                "quantity": int(level["quantity"]), "active": True})
        for warehouse_id, items in by_warehouse.items():
            await self.api.replenish(warehouse_id, items)
        await self.api.refresh_flags(list(products))
        return {"warehouses": len(by_warehouse), "lines": len(levels),
                "products_refreshed": len(products)}

    # commands

    @classmethod
    def add_cli(cls, parser: Any) -> None:
        from connectors.nuorder.handshake import add_arguments

        add_arguments(parser)

    @classmethod
    def run_cli(cls, args: Any) -> int:
        from connectors.nuorder.handshake import run

        return run(args)

    @classmethod
    async def demo(cls, ctx: Any) -> None:
        from connectors.nuorder.demo import run

        await run(ctx)

    # sandboxes

    @classmethod
    def sandbox(cls, config: ConnectorConfig, app_config: Config) -> web.Application:
        from connectors.nuorder.sandbox import create_app

        s = config.settings
        return create_app(Credentials(
            app_config.secret(s["consumer_key_env"]), app_config.secret(s["consumer_secret_env"]),
            app_config.secret(s["token_env"]), app_config.secret(s["token_secret_env"])))

    @classmethod
    def standalone_sandbox(cls) -> web.Application:
        from connectors.nuorder.sandbox import create_app

        d = SANDBOX_CREDENTIALS
        return create_app(Credentials(
            os.environ.get("NUORDER_CONSUMER_KEY", d.consumer_key),
            os.environ.get("NUORDER_CONSUMER_SECRET", d.consumer_secret),
            os.environ.get("NUORDER_TOKEN", d.token),
            os.environ.get("NUORDER_TOKEN_SECRET", d.token_secret)))


def _inventory_problems(levels: Sequence[Mapping[str, Any]], skus: SkuMap,
                        locations: Mapping[str, str]) -> list[str]:
    """What in these levels NuOrder does not know, by the kept products and locations."""
    problems = []
    for name in dict.fromkeys(str(level["warehouse"]) for level in levels):
        if name not in locations:
            problems.append(f"warehouse {name!r} is not a NuOrder location the gateway"
                            " knows (poll the locations feed, or check the name)")
    for sku in dict.fromkeys(str(level["sku"]) for level in levels):
        size = skus.size_of(sku)
        if size is None:
            problems.append(f"SKU {sku!r} is no size of a NuOrder product the gateway"
                            " knows")
        elif not size.sku_id:
            problems.append(f"SKU {sku!r} has no NuOrder SKU id (product {size.product_id}"
                            f" size {size.size})")
    return problems


def _latest_by(items: Sequence[Mapping[str, Any]], key: str) -> list[Mapping[str, Any]]:
    """One item per value of `key` (the latest modified wins); items without it kept."""
    found: dict[Any, Mapping[str, Any]] = {}
    kept = []
    for item in items:
        value = item.get(key)
        if value in (None, ""):
            kept.append(item)
        elif value not in found or str(item.get("modified_on", "")) >= \
                str(found[value].get("modified_on", "")):
            found[value] = item
    return [*found.values(), *kept]


def _nuorder_time(moment: Any) -> str:
    """NuOrder's timestamps: ISO 8601 in UTC with milliseconds."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
