"""The marketplace flow a store connector plays, either side (issue: seller to buyer).

A marketplace order has two copies. The buyer's store is a channel's `source_connector`: its
orders come in (webhook or the `orders` feed) as partner orders, so FOs with an `origin` link,
and each shipment allocated to one goes back as a fulfilment there (`push_fulfillment`; a void
withdraws it, `cancel_fulfillment`; the FO fulfilled marks the order shipped in the platform's
terms). The seller's store is the channel's OMS: the FO is placed there (`push_order`), and
its fulfilments come back as shipments.

Polling only what can change: the `fulfillments` feed (15 min) asks the seller's store for the
orders updated since its cursor, and reads further only those the gateway still watches with
an open link; `corrections` (hourly) does the same for links `watching` after their FO was
done, for late corrections. No watched link, no request. The requests each run made are in
its stats and in /metrics (gateway_poll_requests).

A platform's connector subclasses `StoreConnector` and supplies the calls: the listing, what
one order's fulfilments are, its normalizers and its operations.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, ClassVar

import orjson

from connectors.marketplace.client import RequestCount, StoreClient, retry_after_header
from gateway import logs
from gateway.connector import Connector, Feed, Option, PollResult, RecordKind
from gateway.domain.records import (
    OrderRef,
    PartnerOrder,
    PartnerRecord,
    Shipment,
    ShipmentLine,
    now_iso,
    parse_iso,
    utc_iso,
)
from gateway.errors import PartnerUnavailable
from gateway.names import CANCEL_FULFILLMENT, CANCEL_ORDER, PUSH_FULFILLMENT, PUSH_ORDER
from storage import InboxEvent, NewInboxEvent

log = logs.get("connectors.marketplace")
ORDERS_KIND = "orders"  # the seller's orders the gateway watches, each as last read
OPEN, WATCHING = "open", "watching"


def credential_options(token_help: str) -> tuple[Option, ...]:
    return (Option("access_token_env", str, help=token_help),
            Option("client_secret_env", str, help="variable holding the app's client secret"
                                                  " (webhook signatures)"))


def common_options() -> tuple[Option, ...]:
    return (
        Option("request_timeout_seconds", float, 30.0, minimum=0.1),
        Option("max_rate_limit_waits", int, 10, minimum=0, maximum=100,
               help="429 answers waited out per call before it fails (and is retried later)"),
        Option("import_orders", bool, True,
               help="buyer side: take the store's orders (webhooks and the orders feed)"),
        Option("poll_fulfillments", bool, True,
               help="seller side: read the fulfilments of the orders placed there"),
        Option("push_fulfillments", bool, True,
               help="buyer side: write fulfilments and the shipped status to the store"),
        Option("order_overlap_minutes", float, 10.0, minimum=0.0,
               help="each poll starts this long before the previous one began"),
        Option("order_lookback_days", float, 7.0, minimum=0.0,
               help="the first poll of a feed lists orders updated this far back"),
        Option("place_orders", str, "push", choices=("push", "by_reference"),
               help="seller side: create the order (push), or find the order the platforms"
                    " already share by its reference (by_reference)"),
        Option("reference_field", str, "",
               help="by_reference: the seller's order field holding the buyer's order number"
                    " (a dotted path, or meta:KEY); empty: the platform's default"),
    )


class StoreConnector(Connector):
    """A store platform on either side of a marketplace channel (see the module)."""

    webhooks: ClassVar[bool] = True
    feeds: ClassVar[tuple[Feed, ...]] = (
        Feed("orders", 15.0, toggle="import_orders",
             description="buyer side: orders updated since the cursor, as partner orders"),
        Feed("fulfillments", 15.0, toggle="poll_fulfillments",
             description="seller side: orders updated since the cursor that the gateway"
                         " watches (open links), with their fulfilments"),
        Feed("corrections", 60.0, toggle="poll_fulfillments",
             description="seller side: the same for orders whose FO is done, during their"
                         " watch time (late corrections)"),
    )
    produces: ClassVar[tuple[type, ...]] = (PartnerOrder, Shipment, PartnerRecord)
    record_kinds: ClassVar[tuple[RecordKind, ...]] = (
        RecordKind(ORDERS_KIND, frozenset(),
                   "seller side: each order placed or watched here, as last read (its"
                   " fulfilments, for telling a deleted one)"),
    )
    operations: ClassVar[frozenset[str]] = frozenset(
        {PUSH_ORDER, CANCEL_ORDER, PUSH_FULFILLMENT, CANCEL_FULFILLMENT})
    platform: ClassVar[str] = ""

    # roles, from the channels

    def is_origin(self) -> bool:
        return any(c.source_connector == self.name for c in self._app_config.channels)

    def is_fulfiller(self) -> bool:
        return any(c.oms is not None and c.oms.connector == self.name
                   for c in self._app_config.channels)

    def __init__(self, config: Any, app_config: Any, *args: Any, **contract: Any) -> None:
        super().__init__(config, app_config, *args, **contract)
        self._app_config = app_config

    def count_response(self, status: int) -> None:
        """A partner answer, for /metrics (the client's on_response)."""
        self.metrics.partner_requests.labels(self.name, str(status)).inc()
        if status == 429:
            self.metrics.partner_429.labels(self.name).inc()

    def feed_enabled(self, feed: Feed) -> bool:
        if not super().feed_enabled(feed):
            return False
        return self.is_origin() if feed.name == "orders" else self.is_fulfiller()

    def refusal(self, operation: str) -> str | None:
        if operation in (PUSH_FULFILLMENT, CANCEL_FULFILLMENT) \
                and not self.settings["push_fulfillments"]:
            return "push_fulfillments = false"
        return super().refusal(operation)

    async def perform(self, operation: str, message: Any) -> Mapping[str, Any]:
        """A fulfilment update queued before push_fulfillments was turned off is let go; with
        place_orders = "by_reference" the order is found, not created (nor cancelled)."""
        if operation in (PUSH_FULFILLMENT, CANCEL_FULFILLMENT) \
                and not self.settings["push_fulfillments"]:
            log.info("store.skipped", connector=self.name, operation=operation)
            return {"skipped": "push_fulfillments = false"}
        if self.settings["place_orders"] == "by_reference":
            if operation == PUSH_ORDER:
                return await self.link_by_reference(message)
            if operation == CANCEL_ORDER:
                return {"skipped": "linked by reference: the shared order is cancelled where"
                                   " it was placed, not by the gateway"}
        if operation == PUSH_ORDER and message.attempts:
            existing = await self.find_placed(message.payload)
            if existing is not None:  # placed before an answer was lost: not placed twice
                return {"partner_order_id": self.order_id(existing), "repeated": True}
        return await super().perform(operation, message)

    def store_client(self, headers: Mapping[str, str], budget: Any,
                     **platform: Any) -> StoreClient:
        """The platform's HTTP client: these headers, this budget, the common options'
        time-out and 429 waits, responses counted; `platform`: its retry_after, observe and
        message (StoreClient's keywords)."""
        s = self.settings
        return StoreClient(self.platform, self.name, self.session, self.config.base_url,
                           headers, budget, timeout_seconds=s["request_timeout_seconds"],
                           max_rate_waits=s["max_rate_limit_waits"],
                           on_response=self.count_response,
                           **{"retry_after": retry_after_header, **platform})

    # the seller's order the gateway placed, found again

    def placed_for(self, order: Mapping[str, Any]) -> Any:
        """The FO id this platform's order carries when the gateway placed it (the field the
        platform's push_order writes it to)."""
        raise NotImplementedError

    async def find_placed(self, payload: Mapping[str, Any]) -> dict[str, Any] | None:
        """The order placed for this FO, among those updated since the FO was made: a retry
        after a lost answer finds it instead of placing a second."""
        since = payload.get("created_at") or now_iso()
        return next((o for o in await self.updated_orders(since, now_iso(), buyer=False)
                     if self.placed_for(o) == payload["fulfillment_order_id"]), None)

    async def placed_order_id(self, payload: Mapping[str, Any]) -> str | None:
        if payload.get("partner_order_id"):
            return str(payload["partner_order_id"])
        found = await self.find_placed(payload)
        return self.order_id(found) if found is not None else None

    async def cancel_order(self, message: Any) -> dict[str, Any]:
        order_id = await self.placed_order_id(message.payload)
        if order_id is None:
            return {"cancelled": True, "found": False}
        await self.cancel_placed(order_id)
        return {"cancelled": True, "partner_order_id": order_id}

    async def cancel_placed(self, order_id: str) -> None:
        """Cancel the seller's order, in the platform's terms."""
        raise NotImplementedError

    # the seller's order found, not placed

    default_reference_field: ClassVar[str] = ""

    def reference_of(self, order: Mapping[str, Any]) -> Any:
        field = self.settings["reference_field"] or self.default_reference_field
        if field.startswith("meta:"):
            return next((m.get("value") for m in order.get("meta_data") or []
                         if isinstance(m, dict) and m.get("key") == field[5:]), None)
        value: Any = order
        for part in field.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        return value

    async def link_by_reference(self, message: Any) -> dict[str, Any]:
        """The order the platforms already share, found by the buyer's order number in
        `reference_field` among the seller's orders updated since the FO was made. Not there
        yet: retried (the shared order may be on its way), a dead letter in the end."""
        p = message.payload
        wanted = {str(v) for v in (p.get("order_number"), p["fulfillment_order_id"]) if v}
        wanted |= {v.lstrip("#") for v in wanted}
        since = utc_iso(parse_iso(p.get("created_at") or now_iso()) - timedelta(days=1))
        for order in await self.updated_orders(since, now_iso(), buyer=False):
            reference = self.reference_of(order)
            if reference is not None and str(reference) in wanted:
                return {"partner_order_id": self.order_id(order), "by_reference": True}
        field = self.settings["reference_field"] or self.default_reference_field
        raise PartnerUnavailable(f"no {self.platform} order with {field} ="
                                 f" {p.get('order_number') or p['fulfillment_order_id']} yet")

    # polling

    async def poll(self, feed: Feed, cursor: str | None) -> PollResult:
        state = orjson.loads(cursor) if cursor else {}
        started = now_iso()
        if state.get("since"):
            since = parse_iso(state["since"]) - timedelta(
                minutes=self.settings["order_overlap_minutes"])
        else:
            since = parse_iso(started) - timedelta(days=self.settings["order_lookback_days"])
        events: list[NewInboxEvent] = []
        stats: dict[str, Any] = {}
        with RequestCount() as count:
            if feed.name == "orders":
                orders = await self.updated_orders(utc_iso(since), started, buyer=True)
                events = [await self.poll_order_event(o) for o in orders]
                stats["orders"] = len(orders)
            else:
                wanted = OPEN if feed.name == "fulfillments" else WATCHING
                watched = {link.partner_order_id async for link in
                           self.watched_links("fulfiller")
                           if link.partner_order_id and link.state == wanted}
                stats["watched"] = len(watched)
                if watched:
                    orders = await self.updated_orders(utc_iso(since), started, buyer=False)
                    changed = [o for o in orders if self.order_id(o) in watched]
                    fresh = [o for o in changed if not await self.read_since_changed(o)]
                    for order in fresh:
                        events.append(await self.fulfilment_event(order))
                    stats.update(updated=len(orders), read=len(fresh),
                                 unchanged=len(changed) - len(fresh))
        stats["requests"] = count.n
        return PollResult(events, orjson.dumps({"since": started}).decode(), stats)

    async def poll_order_event(self, order: Mapping[str, Any]) -> NewInboxEvent:
        """A buyer's order as the orders feed stores it (a platform that must read more of
        it, its lines say, does so here)."""
        return self.order_event(order)

    async def read_since_changed(self, order: Mapping[str, Any]) -> bool:
        """Whether this order, as listed, is the version last read (the listing's overlap
        lists it again): its modification stamp the same, and read more than a second after
        it (stamps are to the second: a change in the same second would not show)."""
        stamp = order.get(self.version_field)
        stored = await self.stored_record(ORDERS_KIND, self.order_id(order))
        if stamp is None or stored is None or (stored.fields.get("order") or {}).get(
                self.version_field) != stamp:
            return False
        try:
            changed_at = parse_iso(self.version_iso(stamp))
        except ValueError:
            return False
        return parse_iso(stored.updated_at) > changed_at + timedelta(seconds=1)

    version_field: ClassVar[str] = ""  # the order's modification stamp, listed and kept
    id_field: ClassVar[str] = "id"  # the order's id in the platform's JSON
    # The platform's normalize module: `status_of(order)` (None: not an order to ship yet)
    # and `timestamp(value, fallback)` (its date format as ISO 8601).
    rules: ClassVar[Any] = None

    def version_iso(self, stamp: Any) -> str:
        return self.rules.timestamp(stamp, "") if self.rules else str(stamp)

    def order_event(self, order: Mapping[str, Any], order_id: str | None = None
                    ) -> NewInboxEvent:
        body = orjson.dumps({"kind": "order", "order": order})
        return NewInboxEvent(self.name, f"order:{order_id or self.order_id(order)}:"
                             f"{hashlib.sha256(body).hexdigest()[:16]}", "poll", body)

    def fulfilment_body(self, detail: Mapping[str, Any]) -> NewInboxEvent:
        """A seller's order with what normalizing its fulfilments needs, as an inbox event
        keyed by its content (the same state read twice is stored once)."""
        body = orjson.dumps({"kind": "fulfilments", **detail})
        return NewInboxEvent(self.name, f"fulfilments:{detail['order_id']}:"
                             f"{hashlib.sha256(body).hexdigest()[:16]}", "poll", body)

    async def normalize(self, event: InboxEvent) -> Sequence[Any]:
        body = orjson.loads(event.body)
        at = event.received_at
        if event.kind == "webhook":
            return await self.normalize_webhook(body, dict(event.headers), at)
        if body.get("kind") == "order":
            return [self.partner_order(body["order"], at)]
        return await self.fulfilment_records(body, at)

    async def fulfilment_records(self, detail: Mapping[str, Any], at: str) -> list[Any]:
        """A seller's order's fulfilments as shipments, those gone since it was last read as
        voided, and the order as now read (a partner record)."""
        order_id = str(detail["order_id"])
        shipments = self.shipments(detail, at)
        previous = await self.stored_record(ORDERS_KIND, order_id)
        seen = {s.external_id for s in shipments}
        gone = [] if previous is None else [
            summary for external_id, summary in (previous.fields.get("fulfilments") or {}
                                                 ).items() if external_id not in seen]
        for summary in gone:
            shipments.append(voided(self.name, summary, at))
        kept = {s.external_id: summary_of(s) for s in shipments if s.status != "voided"}
        return [*shipments, PartnerRecord(
            source=self.name, kind=ORDERS_KIND, external_id=order_id,
            fields={"order": detail.get("summary") or {}, "fulfilments": kept},
            updated_at=at)]

    # what a platform supplies

    def order_id(self, order: Mapping[str, Any]) -> str:
        return str(order[self.id_field])

    async def updated_orders(self, since: str, until: str, buyer: bool) -> list[dict[str, Any]]:
        """Every order updated in [since, until], all pages; `buyer`: those to be shipped
        (the buyer's side), else any (a seller's order may be done and corrected)."""
        raise NotImplementedError

    async def fulfilment_event(self, order: Mapping[str, Any]) -> NewInboxEvent:
        """What one watched order's fulfilments are now: reads what it must, then
        `fulfilment_body({"order_id", "summary", ...})`."""
        raise NotImplementedError

    def partner_order(self, order: Mapping[str, Any], at: str) -> PartnerOrder:
        raise NotImplementedError

    def shipments(self, detail: Mapping[str, Any], at: str) -> list[Shipment]:
        raise NotImplementedError

    async def normalize_webhook(self, body: Any, headers: Mapping[str, str],
                                at: str) -> list[Any]:
        """A verified delivery (its body and the stored headers) as records: the platform's
        webhooks are thin or of another shape, so the order is read again here."""
        raise NotImplementedError

    async def records_of_order(self, order: Mapping[str, Any], at: str) -> list[Any]:
        """What one order read afresh (after a webhook) stands for, on each side this
        connector plays: a partner order (buyer side), its fulfilments (seller side, for an
        order the gateway watches)."""
        found: list[Any] = []
        if self.is_origin() and self.settings["import_orders"] and self.takes(order):
            event = await self.poll_order_event(order)
            found.append(self.partner_order(orjson.loads(event.body)["order"], at))
        if self.is_fulfiller() and self.settings["poll_fulfillments"] and \
                self.order_id(order) in {link.partner_order_id async for link in
                                         self.watched_links("fulfiller")}:
            event = await self.fulfilment_event(order)
            found.extend(await self.fulfilment_records(orjson.loads(event.body), at))
        return found

    def takes(self, order: Mapping[str, Any]) -> bool:
        """Whether a buyer's order is one to ship (not a pending or unpaid one)."""
        return self.rules is None or self.rules.status_of(order) is not None


def summary_of(shipment: Shipment) -> dict[str, Any]:
    """What is kept of a fulfilment to void it once the platform no longer lists it."""
    return {"external_id": shipment.external_id,
            "order_refs": [[r.kind, r.value] for r in shipment.order_refs],
            "lines": [[ln.sku, ln.quantity] for ln in shipment.lines],
            "carrier": shipment.carrier, "tracking_numbers": list(shipment.tracking_numbers),
            "tracking_url": shipment.tracking_url, "shipped_at": shipment.shipped_at}


def voided(source: str, summary: Mapping[str, Any], at: str) -> Shipment:
    return Shipment(
        source=source, external_id=summary["external_id"],
        order_refs=tuple(OrderRef(k, v) for k, v in summary["order_refs"]),
        lines=tuple(ShipmentLine(sku, q) for sku, q in summary["lines"]), status="voided",
        partner_updated_at=at, shipped_at=summary.get("shipped_at"),
        carrier=summary.get("carrier"),
        tracking_numbers=tuple(summary.get("tracking_numbers") or ()),
        tracking_url=summary.get("tracking_url"))


def tracking_units(lines: Sequence[Mapping[str, Any]], numbers: Sequence[str]
                   ) -> list[tuple[str, list[dict[str, Any]]]]:
    """Lines split over tracking numbers for a platform that takes one number per shipment:
    the units dealt out in turn, so each number gets a share (the gateway does not know which
    unit travels in which parcel). With no number, one shipment of every line."""
    if len(numbers) <= 1:
        return [(numbers[0] if numbers else "", [dict(ln) for ln in lines])]
    parts: list[dict[str, int]] = [{} for _ in numbers]
    units = [ln for ln in lines for _ in range(int(ln["quantity"]))]
    by_key = {str(ln["line_id"]): ln for ln in lines}
    for index, line in enumerate(units):
        part = parts[index % len(numbers)]
        part[str(line["line_id"])] = part.get(str(line["line_id"]), 0) + 1
    return [(number, [{**by_key[key], "quantity": q} for key, q in part.items()])
            for number, part in zip(numbers, parts, strict=True) if part]
