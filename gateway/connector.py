"""The connector contract (DESIGN.md), declared as data the gateway reads at start.

A connector type `foo` is the package `connectors.foo`, which exposes `CONNECTOR`, a `Connector`
subclass. It declares, as class attributes:

- `options`: a typed schema of its config keys (`Option`), checked when config.toml is loaded:
  an unknown key, a wrong type or an out-of-range value stops the process with the key named;
- `webhooks`: whether it takes webhooks (then `verify` checks each delivery, its token or
  signature and whether its body is one the connector can act on, and gives it its key);
  `webhook_parameters`, the query parameters its webhook URL carries;
- `feeds`: its named polls (`Feed`), each with a default interval, an on/off option and its
  own cursor;
- `produces`: the canonical record types its normalizer returns;
- `record_kinds`: the kinds of partner record it keeps, with the writes each accepts;
- `operations`: the outbound operations it carries out, each handed the whole outbox message;
  and `unsupported`: operations it says it does not do, with the reason (the API answers 501);
- `sandbox_port`, `sandbox_about`: its stand-in server for `fulfillment-gateway sandbox`.

gateway/ names no partner; each connector talks to its partner only through the one
`aiohttp.ClientSession` it is given.
"""

from __future__ import annotations

import asyncio
import importlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import aiohttp
import orjson
from aiohttp import web

from gateway.domain.records import (
    InboundShipment,
    PartnerLink,
    PartnerOrder,
    PartnerRecord,
    Shipment,
)
from gateway.errors import BadRequest, ConfigError, OperationUnsupported
from gateway.metrics import Metrics
from gateway.names import RECORD_WRITES, record_operation
from gateway.ratelimit import RateBudget
from storage import InboxEvent, NewInboxEvent, OutboxMessage

_TYPE = re.compile(r"[a-z][a-z0-9_]*")
REQUIRED: Any = object()
Record = Shipment | PartnerOrder | PartnerRecord | InboundShipment
BudgetFactory = Callable[[str, int, float], RateBudget]  # (connector, per window, window)
WatchedLinks = Callable[[str, str], AsyncIterator[PartnerLink]]  # (connector, role)


class RecordStore(Protocol):
    """What a connector may read of the partner records the gateway keeps (storage's own
    methods): to map or check against what the partner told it before."""

    async def partner_record(self, connector: str, kind: str,
                             external_id: str) -> PartnerRecord | None: ...

    async def list_partner_records(self, connector: str, kind: str, updated_since: str | None,
                                   cursor: str | None, limit: int) -> Any: ...

    async def list_inbound_shipments(self, connector: str | None, statuses: Sequence[str],
                                     updated_since: str | None, cursor: str | None,
                                     limit: int) -> Any: ...


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a table"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


@dataclass(frozen=True)
class Option:
    """One config key of a connector type. `check` may convert the value (a regex compiled)
    and raises ValueError with what is wrong. Keys ending in `_env` name environment
    variables; the variable must be set when the connector is enabled."""

    name: str
    kind: type | tuple[type, ...]
    default: Any = REQUIRED
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] = ()
    check: Callable[[Any], Any] | None = None
    help: str = ""

    def parse(self, options: Mapping[str, Any], where: str) -> Any:
        key = f"{where}.{self.name}"
        if self.name not in options:
            if self.default is REQUIRED:
                raise ConfigError(f"{key}: required")
            if self.check is not None and isinstance(self.default, str):
                return self.check(self.default)  # a default written as the user would write it
            return self.default
        value = options[self.name]
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            raise ConfigError(f"{key}: expected {_kind_name(self.kind)}, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"{key}: must be at least {self.minimum:g}, got {value!r}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(f"{key}: must be at most {self.maximum:g}, got {value!r}")
        if self.choices and value not in self.choices:
            raise ConfigError(f"{key}: one of {', '.join(map(str, self.choices))};"
                              f" got {value!r}")
        if self.name.endswith("_env") and not value:
            raise ConfigError(f"{key}: expected the name of an environment variable")
        if self.check is not None:
            try:
                value = self.check(value)
            except ValueError as exc:
                raise ConfigError(f"{key}: {exc}") from None
        return value


def regex(text: str) -> re.Pattern[str]:
    """An Option check: the value must be a regular expression."""
    try:
        return re.compile(text)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None


@dataclass(frozen=True)
class Feed:
    """A named poll with its own cursor. `toggle` names a boolean option that turns it off;
    `<name>_interval_minutes` is an option of every feed."""

    name: str
    interval_minutes: float = 15.0
    toggle: str | None = None
    description: str = ""

    @property
    def interval_option(self) -> str:
        return f"{self.name}_interval_minutes"


@dataclass(frozen=True)
class RecordKind:
    """A kind of partner record a connector keeps (e.g. a company), and the writes
    (create, update, archive) it sends back to the partner."""

    name: str
    writes: frozenset[str] = frozenset()
    description: str = ""


@dataclass(frozen=True)
class PollResult:
    records: list[NewInboxEvent]
    cursor: str
    stats: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookParameter:
    """A query parameter a connector's webhook URL carries (a secret token, say),
    for the OpenAPI document."""

    name: str
    description: str


class WebhookRequest:
    """What verification may look at: never more than the partner sent."""

    __slots__ = ("headers", "query", "body", "_json")
    _UNPARSED: ClassVar[Any] = object()

    def __init__(self, headers: Mapping[str, str], query: Mapping[str, str],
                 body: bytes) -> None:
        self.headers, self.query, self.body = headers, query, body
        self._json: Any = self._UNPARSED

    def json(self) -> Any:
        """The body parsed (once); BadRequest when it is not JSON."""
        if self._json is self._UNPARSED:
            try:
                self._json = orjson.loads(self.body)
            except orjson.JSONDecodeError:
                raise BadRequest("body is not valid JSON") from None
        return self._json


class Connector:
    """Base of every connector type; a type declares what it has (see the module's docstring)."""

    options: ClassVar[tuple[Option, ...]] = ()
    webhooks: ClassVar[bool] = False
    feeds: ClassVar[tuple[Feed, ...]] = ()
    produces: ClassVar[tuple[type, ...]] = ()
    record_kinds: ClassVar[tuple[RecordKind, ...]] = ()
    operations: ClassVar[frozenset[str]] = frozenset()
    unsupported: ClassVar[Mapping[str, str]] = {}
    webhook_parameters: ClassVar[tuple[WebhookParameter, ...]] = ()
    # Request headers the normalizer needs later; only these are stored with the event.
    stored_headers: ClassVar[tuple[str, ...]] = ()
    # `fulfillment-gateway sandbox TYPE`: its default port, and what --help says about it
    # (the credentials it accepts and its control routes); a type without it has no sandbox.
    sandbox_port: ClassVar[int] = 8081
    sandbox_about: ClassVar[str] = ""
    # `fulfillment-gateway TYPE ...`: commands of the type's own (a partner's one-time OAuth
    # handshake, say); what --help says of them. A type without it has none.
    cli_about: ClassVar[str] = ""

    def __init__(self, config: Any, app_config: Any, session: aiohttp.ClientSession,
                 metrics: Metrics, budgets: BudgetFactory | None = None,
                 links: WatchedLinks | None = None, records: RecordStore | None = None) -> None:
        self.config = config  # gateway.config.ConnectorConfig
        self.name: str = config.name
        self.settings: Mapping[str, Any] = config.settings
        self.session = session
        self.metrics = metrics
        self._budgets = budgets
        self._links = links
        self._records = records

    def inventory_location(self) -> str:
        """Where stock this partner holds sits in the gateway's inventory ledger: the
        connector's `location` option, where it declares one, else its name."""
        return str(self.settings.get("location") or self.name)

    def rate_budget(self, per_window: int, window_seconds: float,
                    part: str | None = None) -> RateBudget:
        """This partner's request budget, shared with every process that calls it (the
        gateway hands over one held in storage; alone, e.g. in a test, it is local). A
        partner that limits each operation on its own gets one budget per `part`."""
        if self._budgets is None:
            return RateBudget(per_window, window_seconds)
        key = self.name if part is None else f"{self.name}/{part}"
        return self._budgets(key, per_window, window_seconds)

    async def watched_links(self, role: str) -> AsyncIterator[PartnerLink]:
        """This connector's links a feed still has to watch, for a partner with no "changed
        since" filter: FOs not yet complete, and completed ones during their watch time (late
        corrections). Role `fulfiller`: orders pushed here; `origin`: orders from here."""
        if self._links is None:
            return
        async for link in self._links(self.name, role):
            yield link

    async def stored_record(self, kind: str, external_id: str) -> PartnerRecord | None:
        """One of this connector's partner records as the gateway keeps it."""
        if self._records is None:
            return None
        return await self._records.partner_record(self.name, kind, external_id)

    async def stored_records(self, kind: str) -> AsyncIterator[PartnerRecord]:
        """Every kept partner record of one kind (archived ones included), page by page."""
        if self._records is None:
            return
        cursor = None
        while True:
            page = await self._records.list_partner_records(self.name, kind, None, cursor, 500)
            for record in page.items:
                yield record
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def stored_inbound_shipments(self, statuses: Sequence[str]) -> AsyncIterator[Any]:
        """This connector's inbound shipments as the gateway keeps them, in these statuses."""
        if self._records is None:
            return
        cursor = None
        while True:
            page = await self._records.list_inbound_shipments(self.name, statuses, None,
                                                              cursor, 500)
            for shipment in page.items:
                yield shipment
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # what the type declares, read by the gateway

    @classmethod
    def schema(cls) -> tuple[Option, ...]:
        """Every key a config table of this type may hold, besides the gateway's own."""
        declared = {o.name for o in cls.options}
        extra = tuple(Option(f.interval_option, float, None, minimum=0.01,
                             help=f"minutes between polls of the {f.name} feed")
                      for f in cls.feeds if f.interval_option not in declared)
        return (*cls.options, *extra)

    @classmethod
    def declared_operations(cls) -> frozenset[str]:
        writes = {record_operation(w, k.name) for k in cls.record_kinds for w in k.writes}
        return cls.operations | writes

    @classmethod
    def record_kind(cls, name: str) -> RecordKind | None:
        return next((k for k in cls.record_kinds if k.name == name), None)

    def feed(self, name: str) -> Feed | None:
        return next((f for f in self.feeds if f.name == name), None)

    def feed_enabled(self, feed: Feed) -> bool:
        return bool(self.settings.get(feed.toggle, True)) if feed.toggle else True

    def feed_interval(self, feed: Feed) -> float:
        specific = self.settings.get(feed.interval_option)
        if specific is not None:
            return float(specific)
        if self.config.poll_interval_minutes is not None:
            return float(self.config.poll_interval_minutes)
        return feed.interval_minutes

    def enabled_feeds(self) -> list[Feed]:
        return [f for f in self.feeds if self.feed_enabled(f)]

    def refusal(self, operation: str) -> str | None:
        """Why this connector will not carry out an operation now, or None if it will.
        A type whose options turn operations off extends this."""
        if operation in self.unsupported:
            return self.unsupported[operation]
        if operation not in self.declared_operations():
            return "not an operation this connector type has"
        return None

    # the contract's calls

    def verify(self, request: WebhookRequest) -> str | None:
        """Check the delivery is the partner's and one this connector can act on; return its
        de-duplication key, or None for a genuine delivery with nothing to do (acknowledged,
        stored nowhere).

        Raises WebhookRejected when it is not the partner's (401), and BadRequest when the
        body is not one it could act on (400: valid JSON of the wrong shape, a reference it
        would refuse to follow); either way nothing is stored.
        """
        raise NotImplementedError

    async def normalize(self, event: InboxEvent) -> Sequence[Record]:
        """The canonical records an inbox event stands for (types from `produces`)."""
        raise NotImplementedError

    async def poll(self, feed: Feed, cursor: str | None) -> PollResult:
        """What changed at the partner since the cursor, as inbox events, and the new cursor."""
        raise NotImplementedError

    async def perform(self, operation: str, message: OutboxMessage) -> Mapping[str, Any]:
        """Carry out one outbound message. Order operations call the method of the same name,
        record writes `write_record`; each gets the whole message (its key is the partner's
        idempotency key where the partner has one), must be idempotent at the partner, and
        returns what to record. Failures raise the error that says whether to retry."""
        reason = self.refusal(operation)
        if reason is not None:
            raise OperationUnsupported(self.name, operation, reason)
        write, _, kind = operation.partition(":")
        if kind and write in RECORD_WRITES:
            return await self.write_record(kind, write, message)
        return await getattr(self, operation)(message)

    async def write_record(self, kind: str, write: str,
                           message: OutboxMessage) -> Mapping[str, Any]:
        """Create, update or archive a partner record; returns the record's fields as the
        partner now has them (with `id`)."""
        raise NotImplementedError

    async def check_write(self, kind: str, write: str, external_id: str | None,
                          fields: Mapping[str, Any]) -> None:
        """Refuse a record write before it is queued (BadRequest, Conflict) when what the
        gateway keeps already shows it cannot succeed: a duplicate code, a missing field."""
        return None

    async def check_inventory(self, levels: Sequence[Mapping[str, Any]]) -> list[str]:
        """For push_inventory: what in these levels the partner does not know (a SKU, a
        warehouse), each named; empty when they can be sent."""
        return []

    def status(self) -> dict[str, Any]:
        """Connector-specific health: rate-limit state and the like."""
        return {}

    @classmethod
    def sandbox(cls, config: Any, app_config: Any) -> web.Application:
        """A stand-in server for this partner, accepting the credentials config names."""
        raise NotImplementedError

    @classmethod
    def standalone_sandbox(cls) -> web.Application:
        """The sandbox with no config file: the credentials `sandbox_about` names."""
        raise NotImplementedError

    @classmethod
    def add_cli(cls, parser: Any) -> None:
        """Add the type's commands (argparse subparsers) to `fulfillment-gateway TYPE`."""

    @classmethod
    def run_cli(cls, args: Any) -> int:
        """Run one of them; the exit status. `args.config` names the config file, which
        may not be loadable yet (the handshake makes the secrets it needs)."""
        raise NotImplementedError

    @classmethod
    async def demo(cls, ctx: DemoContext) -> None:
        """Script this partner's sandbox for `fulfillment-gateway demo`; optional."""
        return None

    @classmethod
    async def demo_ship(cls, ctx: DemoContext, partner_order_id: str,
                        parts: Sequence[Sequence[tuple[str, int]]]) -> list[dict[str, Any]]:
        """For another type's demo: have this partner's sandbox (a 3PL's) ship an order the
        gateway placed there, in parts (each a list of SKU and quantity), a few seconds
        apart, telling the gateway as the partner would; each part's shipment as the partner
        shows it. A type whose sandbox does not ship has none."""
        raise NotImplementedError

    @classmethod
    async def demo_reship(cls, ctx: DemoContext, partner_order_id: str, external_id: str,
                          tracking: str) -> dict[str, Any]:
        """For another type's demo: have this partner's sandbox correct one shipment it
        made (withdraw it, ship its items again under a new tracking number), telling the
        gateway as the partner would; the new shipment as the partner shows it."""
        raise NotImplementedError


@dataclass(frozen=True)
class DemoContext:
    """What a connector's demo scenario gets: where things listen, and how to talk and print."""

    connector: Any  # gateway.config.ConnectorConfig
    app_config: Any  # gateway.config.Config
    api_url: str
    api_token: str
    webhook_url: str
    session: aiohttp.ClientSession
    say: Callable[[str], None]

    async def api(self, method: str, path: str, body: Any = None) -> Any:
        """One call to the gateway's API with the demo token; its answer (raises on >= 300)."""
        async with self.session.request(method, f"{self.api_url}{path}", json=body, headers={
                "Authorization": f"Bearer {self.api_token}"}) as resp:
            answer = await resp.json()
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path}: {resp.status} {answer}")
            return answer

    async def sandbox(self, path: str, body: Any = None) -> Any:
        """The connector's sandbox control route `/_sandbox{path}`: POST with a body, else
        GET; its answer."""
        async with self.session.request("POST" if body is not None else "GET",
                                        f"{self.connector.base_url}/_sandbox{path}",
                                        json=body) as resp:
            resp.raise_for_status()
            return await resp.json()

    @staticmethod
    async def until(check: Callable[[], Awaitable[Any]], what: str,
                    within: float = 60.0) -> Any:
        """`check()` until it answers something true (that answer), or TimeoutError."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = await check()
            if found:
                return found
            await asyncio.sleep(0.2)
        raise TimeoutError(f"{what}: not within {within:.0f} s")


def connector_type(type_name: str, where: str) -> type[Connector]:
    if not _TYPE.fullmatch(type_name):
        raise ConfigError(f"{where}.type: {type_name!r} is not a connector type name")
    try:
        module = importlib.import_module(f"connectors.{type_name}")
    except ModuleNotFoundError:
        raise ConfigError(f"{where}.type: no connector type {type_name!r}"
                          f" (expected a package connectors/{type_name}/)") from None
    cls = getattr(module, "CONNECTOR", None)
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise ConfigError(f"{where}.type: connectors.{type_name} has no CONNECTOR class")
    return cls


def connector_class(config: Any) -> type[Connector]:
    return connector_type(config.type, config.key)


def parse_settings(type_name: str, options: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A connector table's own keys, checked against its type's schema."""
    schema = connector_type(type_name, where).schema()
    known = {o.name for o in schema}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} for connector type"
                          f" {type_name!r}; known: {', '.join(sorted(known)) or 'none'}")
    return {o.name: o.parse(options, where) for o in schema}
