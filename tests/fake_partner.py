"""A scripted, test-only connector type exercising every element of the connector contract.

Registered as connector type `fake` (the module `connectors.fake`) by tests/conftest.py. Each
connector of this type talks to a `FakePartner`, looked up by the connector's name, which a
test scripts like the httpx MockTransport idea: records waiting in each feed, what each
operation answers (a result or an error, in order), and a log of every call, so a test can
count polls and operations. No network: the core's tests run against this, not a real partner.

A gateway run as its own process (tests/processes.py) scripts its partners from the JSON file
the variable FAKE_SCRIPT names: `{"<connector>": {"<feed>": [{"kind": ..., "record": ...}]}}`.

Webhook: header `X-Fake-Token` must equal the secret `token_env` names; `X-Fake-Delivery` is
the delivery key. A webhook or polled body is `{"kind": ..., "record": {...}}` with kind
`shipment`, `partner_order` or `partner_record` (see `to_record`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import orjson

from gateway.connector import (
    Connector,
    Feed,
    Option,
    PollResult,
    RecordKind,
    WebhookRequest,
    regex,
)
from gateway.domain.records import (
    OrderRef,
    PartnerOrder,
    PartnerOrderLine,
    PartnerRecord,
    Shipment,
    ShipmentLine,
    now_iso,
)
from gateway.errors import BadRequest, WebhookRejected
from gateway.names import CANCEL_FULFILLMENT, CANCEL_ORDER, PUSH_FULFILLMENT, PUSH_ORDER
from storage import InboxEvent, NewInboxEvent, OutboxMessage


@dataclass
class FakePartner:
    """One partner account: what its feeds hold, what its operations answer, what it got."""

    feeds: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    polls: list[tuple[str, str | None]] = field(default_factory=list)
    calls: list[OutboxMessage] = field(default_factory=list)
    script: dict[str, list[BaseException | Mapping[str, Any] | asyncio.Event]] = field(default_factory=dict)
    records: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    poll_error: BaseException | None = None
    # the watched feed: shipments the partner has per order id, and the ids it was asked about
    by_order: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    asked_about: list[list[str]] = field(default_factory=list)

    def add(self, feed: str, kind: str, record: dict[str, Any]) -> None:
        self.feeds.setdefault(feed, []).append({"kind": kind, "record": record})
        if kind == "partner_record":  # the partner's own copy, which writes change
            self.records[(record["kind"], str(record["id"]))] = dict(record["fields"])

    def answer(self, operation: str, *outcomes: BaseException | Mapping[str, Any]) -> None:
        """The next calls of `operation` raise or return these, in order; then success."""
        self.script.setdefault(operation, []).extend(outcomes)

    def hold(self, operation: str) -> asyncio.Event:
        """The next call of `operation` is taken (and logged) but answers only once the
        returned event is set: a partner slow to answer, a call in flight."""
        release = asyncio.Event()
        self.script.setdefault(operation, []).append(release)
        return release

    def called(self, operation: str) -> list[OutboxMessage]:
        return [m for m in self.calls if m.kind == operation]

    async def _next(self, operation: str) -> Mapping[str, Any] | None:
        queue = self.script.get(operation) or []
        if not queue:
            return None
        outcome = queue.pop(0)
        if isinstance(outcome, asyncio.Event):
            await outcome.wait()
            return None
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


PARTNERS: dict[str, FakePartner] = {}


def partner(name: str) -> FakePartner:
    if name not in PARTNERS:
        PARTNERS[name] = FakePartner()
        script = os.environ.get("FAKE_SCRIPT")
        if script:  # a process of its own: its feeds come from a file
            for feed, items in orjson.loads(Path(script).read_bytes()).get(name, {}).items():
                for item in items:
                    PARTNERS[name].add(feed, item["kind"], item["record"])
    return PARTNERS[name]


def to_record(source: str, kind: str, record: Mapping[str, Any]) -> Shipment | PartnerOrder | PartnerRecord:
    if kind == "shipment":
        return Shipment(
            source=source, external_id=str(record["id"]),
            order_refs=tuple(OrderRef(k, v) for k, v in record.get("order_refs", [])),
            lines=tuple(ShipmentLine(sku, qty) for sku, qty in record["lines"]),
            status=record.get("status", "shipped"), partner_updated_at=record["updated_at"],
            shipped_at=record.get("shipped_at", record["updated_at"]),
            carrier=record.get("carrier"),
            tracking_numbers=tuple(record.get("tracking_numbers", ())),
            tracking_url=record.get("tracking_url"))
    if kind == "partner_order":
        return PartnerOrder(
            source=source, external_id=str(record["id"]), status=record.get("status", "open"),
            lines=tuple(PartnerOrderLine(sku, qty, str(i + 1))
                        for i, (sku, qty) in enumerate(record.get("lines", []))),
            partner_updated_at=record["updated_at"], order_number=record.get("order_number"),
            ship_to=record.get("ship_to", {}), customer_ref=record.get("customer"), raw=record)
    if kind == "partner_record":
        return PartnerRecord(source=source, kind=record["kind"], external_id=str(record["id"]),
                             fields=record["fields"], updated_at=record["updated_at"],
                             archived=record.get("archived", False))
    raise ValueError(f"unknown fake record kind {kind!r}")


class FakeConnector(Connector):
    options: ClassVar[tuple[Option, ...]] = (
        Option("token_env", str, help="variable holding the webhook token"),
        Option("sync_orders", bool, True, help="poll the orders feed"),
        Option("sync_records", bool, True, help="poll the records feed"),
        Option("write_records", bool, True, help="send record writes back to the partner"),
        Option("page_size", int, 100, minimum=1, maximum=500, help="records per poll, at most"),
        Option("id_pattern", str, ".*", check=regex,
               help="only records whose partner id matches are polled"),
    )
    webhooks = True
    feeds: ClassVar[tuple[Feed, ...]] = (
        Feed("orders", 15.0, toggle="sync_orders", description="orders placed at the partner"),
        Feed("records", 1440.0, toggle="sync_records", description="companies, daily"),
        Feed("shipments", 15.0, description="what the partner shipped"),
        Feed("watched", 15.0, description="per order still watched: the partner has no"
             " changed-since filter, so it is asked only about those"),
    )
    produces: ClassVar[tuple[type, ...]] = (Shipment, PartnerOrder, PartnerRecord)
    record_kinds: ClassVar[tuple[RecordKind, ...]] = (
        RecordKind("company", frozenset({"create", "update", "archive", "delete", "hold"}),
                   "buyers"),
        RecordKind("location", frozenset(), "warehouses (read only)"),
    )
    operations: ClassVar[frozenset[str]] = frozenset(
        {PUSH_ORDER, CANCEL_ORDER, PUSH_FULFILLMENT, CANCEL_FULFILLMENT})
    unsupported: ClassVar[Mapping[str, str]] = {
        "push_inventory": "the fake partner keeps no stock levels"}
    stored_headers: ClassVar[tuple[str, ...]] = ("X-Fake-Topic",)

    def __init__(self, config: Any, app_config: Any, session: Any, metrics: Any,
                 **contract: Any) -> None:
        super().__init__(config, app_config, session, metrics, **contract)
        self._token = app_config.secret(self.settings["token_env"])
        self.partner = partner(self.name)

    def refusal(self, operation: str) -> str | None:
        if ":" in operation and not self.settings["write_records"]:
            return "write_records = false"
        return super().refusal(operation)

    def verify(self, request: WebhookRequest) -> str:
        token = request.headers.get("X-Fake-Token", "")
        if not hmac.compare_digest(token.encode(), self._token.encode()):
            raise WebhookRejected("X-Fake-Token missing or wrong")
        body = request.json()
        items = body if isinstance(body, list) else [body]
        if not items or not all(isinstance(i, dict) and isinstance(i.get("kind"), str)
                                and isinstance(i.get("record"), dict) for i in items):
            raise BadRequest("expected {kind, record} or a list of them")
        if all(i["kind"] == "noise" for i in items):
            return None  # the partner's, with nothing to act on
        return request.headers.get("X-Fake-Delivery") or \
            "sha256:" + hashlib.sha256(request.body).hexdigest()

    async def normalize(self, event: InboxEvent) -> Sequence[Any]:
        body = orjson.loads(event.body)
        items = body if isinstance(body, list) else [body]
        return [to_record(self.name, item["kind"], item["record"]) for item in items]

    async def poll(self, feed: Feed, cursor: str | None) -> PollResult:
        self.partner.polls.append((feed.name, cursor))
        if self.partner.poll_error is not None:
            raise self.partner.poll_error
        if feed.name == "watched":
            return await self._poll_watched()
        start = int(cursor or 0)
        waiting = self.partner.feeds.get(feed.name, [])[start:start + self.settings["page_size"]]
        wanted = self.settings["id_pattern"]
        events = [NewInboxEvent(self.name, f"{feed.name}:{start + i}", "poll", orjson.dumps(item))
                  for i, item in enumerate(waiting)
                  if wanted.fullmatch(str(item["record"]["id"]))]
        return PollResult(events, str(start + len(waiting)), {"seen": len(waiting)})

    async def _poll_watched(self) -> PollResult:
        asked, events = [], []
        async for link in self.watched_links("fulfiller"):
            order_id = link.partner_order_id or ""
            asked.append(order_id)
            for n, record in enumerate(self.partner.by_order.get(order_id, [])):
                events.append(NewInboxEvent(self.name, f"watched:{order_id}:{n}", "poll",
                                            orjson.dumps({"kind": "shipment", "record": record})))
        self.partner.asked_about.append(asked)
        return PollResult(events, "", {"asked_about": len(asked)})

    async def _call(self, message: OutboxMessage, default: Mapping[str, Any]) -> dict[str, Any]:
        self.partner.calls.append(message)
        return dict(await self.partner._next(message.kind) or default)

    async def push_order(self, message: OutboxMessage) -> dict[str, Any]:
        return await self._call(message, {"partner_order_id": f"P-{message.fo_id}"})

    async def cancel_order(self, message: OutboxMessage) -> dict[str, Any]:
        return await self._call(message, {"cancelled": True})

    async def push_fulfillment(self, message: OutboxMessage) -> dict[str, Any]:
        shipment = message.payload.get("shipment_id")
        return await self._call(message, {"partner_fulfillment_id": f"F-{shipment}"}
                          if shipment else {"accepted": True})

    async def cancel_fulfillment(self, message: OutboxMessage) -> dict[str, Any]:
        return await self._call(message, {"cancelled": True})

    async def write_record(self, kind: str, write: str,
                           message: OutboxMessage) -> Mapping[str, Any]:
        result = await self._call(message, {})
        if result:
            return result
        external_id = message.payload["id"] or f"{kind}-{len(self.partner.records) + 1}"
        stored = self.partner.records.setdefault((kind, external_id), {})
        stored.update(message.payload["fields"])
        return {"id": external_id, **stored, "updated_at": now_iso(),
                "archived": write in ("archive", "delete")}


CONNECTOR = FakeConnector
