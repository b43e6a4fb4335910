"""Configuration: config.toml parsed once into frozen dataclasses, validated at start.

Nothing else reads the file. Secrets never live in it: every key ending in `_env` names an
environment variable, and a missing variable stops the process with the key that named it.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gateway.connector import Option, parse_settings
from gateway.errors import ConfigError
from gateway.names import EVENT_TYPES, INVOICE_TIMINGS
from storage import BACKENDS, Storage, open_backend

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_RETRY_ATTEMPTS = 8
DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
DEFAULT_RETRY_JITTER = 0.2
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # A connection idle this long (between requests, or before a request's headers have all
    # arrived) is closed; keep it above a load balancer's own idle time-out.
    idle_timeout_seconds: float = 60.0
    body_timeout_seconds: float = 30.0  # a request body must arrive within this
    access_log: bool = True  # one JSON line per request: method, path, status, duration


@dataclass(frozen=True)
class StorageConfig:
    backend: str = "sqlite"
    path: str = "data/gateway.sqlite3"  # sqlite
    dsn_env: str = "GATEWAY_DATABASE_URL"  # postgresql: the variable holding the DSN
    pool_size: int = 10  # postgresql: connections per process

    @property
    def where(self) -> str:
        """What logs name: the file, or the database by the variable holding its DSN (the
        DSN itself may carry a password)."""
        return self.path if self.backend == "sqlite" else f"postgresql (${self.dsn_env})"


@dataclass(frozen=True)
class ApiConfig:
    tokens_env: str = "GATEWAY_API_TOKENS"


@dataclass(frozen=True)
class RetryConfig:
    """One retry policy for every retried thing: inbox events now, outbound calls later."""

    attempts: int = DEFAULT_RETRY_ATTEMPTS
    schedule_seconds: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    jitter: float = DEFAULT_RETRY_JITTER


@dataclass(frozen=True)
class WorkerConfig:
    concurrency: int = 4
    batch_size: int = 64
    # Processed inbox events older than this are deleted (daily); their delivery keys go
    # with them, so a duplicate older than this is stored again and, being idempotent,
    # reprocessed without effect. 0 keeps everything.
    inbox_retention_days: float = 30.0
    # How long a claim on an inbox event or outbox message holds without being extended (a
    # live process extends it every third of this): how soon a dead process's work is taken
    # over by another sharing the database.
    lease_seconds: float = 60.0


@dataclass(frozen=True)
class OutboxConfig:
    """The dispatcher of every outbound call: partner pushes and event deliveries."""

    concurrency: int = 16  # calls in flight per destination (one connector, one subscriber)
    # Messages held at once: claimed, in flight, or sent and not yet recorded. Well above
    # `concurrency`, so senders are not starved while a batch of outcomes is committed.
    batch_size: int = 256
    request_timeout_seconds: float = 10.0  # for event deliveries; connectors have their own
    # Sent and cancelled messages older than this are deleted (daily); dead ones stay until
    # replayed. Once-only keys (an invoice per shipment) are kept as long. 0 keeps everything.
    retention_days: float = 90.0


@dataclass(frozen=True)
class PollingConfig:
    # After `serve` starts, its feeds first run this many seconds later (then each at its
    # interval); a manual poll runs at once.
    first_run_delay_seconds: float = 30.0


@dataclass(frozen=True)
class LinksConfig:
    # Once an FO is fulfilled or cancelled, its partner links stay watched this long for late
    # corrections (a relabel, a cancelled-then-refulfilled order) before they are complete.
    watch_days: float = 14.0


@dataclass(frozen=True)
class OmsPushConfig:
    connector: str
    store_id: int | str | None = None
    delay_minutes: float = 0.0  # 0 pushes when the FO is created


@dataclass(frozen=True)
class ChannelConfig:
    name: str
    warehouse_group: str | None = None
    internal: bool = True
    description: str = ""
    tags: tuple[str, ...] = ()
    oms: OmsPushConfig | None = None
    push_fulfillment_updates: bool = False
    # gateway custom-field name -> the partner's field name, verbatim; dots reach into objects
    custom_fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    invoice_timing: str | None = None
    # For a channel whose orders come from a partner: the connector its updates go back to.
    source_connector: str | None = None
    key: str = "channels[?]"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "warehouse_group": self.warehouse_group,
                "internal": self.internal, "description": self.description,
                "tags": list(self.tags),
                "oms": None if self.oms is None else {
                    "connector": self.oms.connector, "store_id": self.oms.store_id,
                    "delay_minutes": self.oms.delay_minutes},
                "push_fulfillment_updates": self.push_fulfillment_updates,
                "custom_fields": dict(self.custom_fields),
                "invoice_timing": self.invoice_timing,
                "source_connector": self.source_connector}


@dataclass(frozen=True)
class SubscriberConfig:
    name: str
    url: str
    secret_env: str
    events: tuple[str, ...]
    key: str = "subscribers[?]"

    def wants(self, event_type: str) -> bool:
        return "*" in self.events or event_type in self.events


@dataclass(frozen=True)
class ConnectorConfig:
    name: str
    type: str
    base_url: str
    enabled: bool = True
    # When set, the interval of every feed that has no `<feed>_interval_minutes` of its own.
    poll_interval_minutes: float | None = None
    # The rest of the table, checked against the connector type's declared options.
    settings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    key: str = "connectors[?]"  # where in config.toml it came from, for error messages


@dataclass(frozen=True)
class Config:
    server: ServerConfig
    storage: StorageConfig
    api: ApiConfig
    retry: RetryConfig
    worker: WorkerConfig
    connectors: tuple[ConnectorConfig, ...]
    outbox: OutboxConfig = OutboxConfig()
    links: LinksConfig = LinksConfig()
    polling: PollingConfig = PollingConfig()
    channels: tuple[ChannelConfig, ...] = ()
    subscribers: tuple[SubscriberConfig, ...] = ()
    source: str = "<memory>"
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)

    def connector(self, name: str) -> ConnectorConfig | None:
        return next((c for c in self.connectors if c.name == name), None)

    def channel(self, name: str | None) -> ChannelConfig | None:
        return next((c for c in self.channels if c.name == name), None)

    def channel_for_source(self, connector: str) -> ChannelConfig | None:
        """The channel whose orders come from this connector (its partner orders become FOs
        there); config allows at most one."""
        return next((c for c in self.channels if c.source_connector == connector), None)

    def secret(self, env_name: str) -> str:
        """The value of a variable an `*_env` key named; present, since load() checked it."""
        try:
            return self.secrets[env_name]
        except KeyError:
            raise ConfigError(f"environment variable {env_name} is not set") from None

    def open_storage(self) -> Storage:
        """The storage [storage] names (not yet opened)."""
        s = self.storage
        dsn = self.secret(s.dsn_env) if s.backend == "postgresql" else ""
        return open_backend(s.backend, s.path, dsn, s.pool_size,
                            dsn_source=f"storage.dsn_env (${s.dsn_env})")

    def api_tokens(self) -> tuple[str, ...]:
        raw = self.secret(self.api.tokens_env)
        return tuple(t.strip() for t in raw.split(",") if t.strip())


def _take(table: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...], default: Any) -> Any:
    if key not in table:
        return default
    return Option(key, kind, default).parse({key: table.pop(key)}, where)


def _no_leftovers(table: dict[str, Any], where: str) -> None:
    if table:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(table))}")


def _section(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.pop(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}]: expected a table")
    return dict(value)


def _positive(value: float, where: str) -> None:
    if value <= 0:
        raise ConfigError(f"{where}: must be greater than 0, got {value!r}")


def parse(doc: Mapping[str, Any], environ: Mapping[str, str] | None = None,
          source: str = "<memory>") -> Config:
    """Validate a parsed TOML document; every `*_env` key must name a set variable."""
    environ = os.environ if environ is None else environ
    doc = dict(doc)

    srv = _section(doc, "server")
    server = ServerConfig(
        host=_take(srv, "host", "server", str, ServerConfig.host),
        port=_take(srv, "port", "server", int, ServerConfig.port),
        max_body_bytes=_take(srv, "max_body_bytes", "server", int, DEFAULT_MAX_BODY_BYTES),
        idle_timeout_seconds=float(_take(srv, "idle_timeout_seconds", "server", (int, float),
                                         ServerConfig.idle_timeout_seconds)),
        body_timeout_seconds=float(_take(srv, "body_timeout_seconds", "server", (int, float),
                                         ServerConfig.body_timeout_seconds)),
        access_log=_take(srv, "access_log", "server", bool, ServerConfig.access_log),
    )
    _no_leftovers(srv, "[server]")
    if not 0 <= server.port <= 65535:
        raise ConfigError(f"server.port: must be 0..65535, got {server.port}")
    _positive(server.max_body_bytes, "server.max_body_bytes")
    _positive(server.idle_timeout_seconds, "server.idle_timeout_seconds")
    _positive(server.body_timeout_seconds, "server.body_timeout_seconds")

    sto = _section(doc, "storage")
    storage = StorageConfig(backend=_take(sto, "backend", "storage", str, StorageConfig.backend),
                            path=_take(sto, "path", "storage", str, StorageConfig.path),
                            dsn_env=_take(sto, "dsn_env", "storage", str, StorageConfig.dsn_env),
                            pool_size=_take(sto, "pool_size", "storage", int,
                                            StorageConfig.pool_size))
    _no_leftovers(sto, "[storage]")
    if storage.backend not in BACKENDS:
        raise ConfigError(f"storage.backend: {storage.backend!r} is not one of: "
                          f"{', '.join(BACKENDS)}")
    _positive(storage.pool_size, "storage.pool_size")

    api_t = _section(doc, "api")
    api = ApiConfig(tokens_env=_take(api_t, "tokens_env", "api", str, ApiConfig.tokens_env))
    _no_leftovers(api_t, "[api]")

    ret = _section(doc, "retry")
    schedule = _take(ret, "schedule_seconds", "retry", list, list(DEFAULT_RETRY_SCHEDULE))
    if not schedule or not all(isinstance(s, int | float) and not isinstance(s, bool) and s >= 0
                               for s in schedule):
        raise ConfigError("retry.schedule_seconds: expected a non-empty list of numbers >= 0")
    retry = RetryConfig(
        attempts=_take(ret, "attempts", "retry", int, DEFAULT_RETRY_ATTEMPTS),
        schedule_seconds=tuple(float(s) for s in schedule),
        jitter=float(_take(ret, "jitter", "retry", (int, float), DEFAULT_RETRY_JITTER)),
    )
    _no_leftovers(ret, "[retry]")
    _positive(retry.attempts, "retry.attempts")
    if not 0 <= retry.jitter <= 1:
        raise ConfigError(f"retry.jitter: must be between 0 and 1, got {retry.jitter}")

    wrk = _section(doc, "worker")
    worker = WorkerConfig(
        concurrency=_take(wrk, "concurrency", "worker", int, WorkerConfig.concurrency),
        batch_size=_take(wrk, "batch_size", "worker", int, WorkerConfig.batch_size),
        inbox_retention_days=float(_take(wrk, "inbox_retention_days", "worker", (int, float),
                                         WorkerConfig.inbox_retention_days)),
        lease_seconds=float(_take(wrk, "lease_seconds", "worker", (int, float),
                                  WorkerConfig.lease_seconds)),
    )
    _positive(worker.lease_seconds, "worker.lease_seconds")
    _no_leftovers(wrk, "[worker]")
    if worker.inbox_retention_days < 0:
        raise ConfigError("worker.inbox_retention_days: must be 0 (keep all) or more")
    _positive(worker.concurrency, "worker.concurrency")
    _positive(worker.batch_size, "worker.batch_size")

    raw_connectors = doc.pop("connectors", [])
    if not isinstance(raw_connectors, list):
        raise ConfigError("[[connectors]]: expected an array of tables")
    connectors = []
    seen: set[str] = set()
    for i, table in enumerate(raw_connectors):
        where = f"connectors[{i}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: expected a table")
        table = dict(table)
        name = _unique_name(table, where, seen, "connector")
        ctype = _take(table, "type", where, str, None)
        if ctype is None:
            raise ConfigError(f"{where}.type: required")
        base_url = _take(table, "base_url", where, str, None)
        if base_url is None or not re.match(r"^https?://", base_url):
            raise ConfigError(f"{where}.base_url: required, an http(s) URL")
        interval = _take(table, "poll_interval_minutes", where, (int, float), None)
        if interval is not None:
            _positive(interval, f"{where}.poll_interval_minutes")
        enabled_ = _take(table, "enabled", where, bool, True)
        connectors.append(ConnectorConfig(
            name=name, type=ctype, base_url=base_url.rstrip("/"), enabled=enabled_,
            poll_interval_minutes=None if interval is None else float(interval),
            settings=MappingProxyType(parse_settings(ctype, table, where)), key=where,
        ))

    obx = _section(doc, "outbox")
    outbox = OutboxConfig(
        concurrency=_take(obx, "concurrency", "outbox", int, OutboxConfig.concurrency),
        batch_size=_take(obx, "batch_size", "outbox", int, OutboxConfig.batch_size),
        request_timeout_seconds=float(_take(obx, "request_timeout_seconds", "outbox",
                                            (int, float), OutboxConfig.request_timeout_seconds)),
        retention_days=float(_take(obx, "retention_days", "outbox", (int, float),
                                   OutboxConfig.retention_days)),
    )
    if outbox.retention_days < 0:
        raise ConfigError("outbox.retention_days: must be 0 (keep all) or more")
    _no_leftovers(obx, "[outbox]")
    _positive(outbox.concurrency, "outbox.concurrency")
    _positive(outbox.batch_size, "outbox.batch_size")
    _positive(outbox.request_timeout_seconds, "outbox.request_timeout_seconds")

    pol = _section(doc, "polling")
    polling = PollingConfig(first_run_delay_seconds=float(_take(
        pol, "first_run_delay_seconds", "polling", (int, float),
        PollingConfig.first_run_delay_seconds)))
    _no_leftovers(pol, "[polling]")
    if polling.first_run_delay_seconds < 0:
        raise ConfigError("polling.first_run_delay_seconds: must be 0 or more")

    lnk = _section(doc, "links")
    links = LinksConfig(watch_days=_take(lnk, "watch_days", "links", float,
                                         LinksConfig.watch_days))
    _no_leftovers(lnk, "[links]")
    if links.watch_days < 0:
        raise ConfigError("links.watch_days: must be 0 or more")

    enabled = {c.name for c in connectors if c.enabled}
    channels = _channels(doc.pop("channels", []), enabled)
    sources = [c.source_connector for c in channels if c.source_connector]
    for c in channels:
        if c.source_connector and sources.count(c.source_connector) > 1:
            raise ConfigError(f"{c.key}.source_connector: {c.source_connector!r} is the source"
                              " of another channel too; its orders need one channel")
    subscribers = _subscribers(doc.pop("subscribers", []))

    _no_leftovers(doc, "config")

    env_keys = [("api.tokens_env", api.tokens_env)]
    if storage.backend == "postgresql":
        env_keys.append(("storage.dsn_env", storage.dsn_env))
    env_keys += [(f"{s.key}.secret_env", s.secret_env) for s in subscribers]
    for c in connectors:
        if c.enabled:
            env_keys += [(f"{c.key}.{k}", v) for k, v in c.settings.items()
                         if k.endswith("_env") and v is not None]
    secrets, missing = {}, []
    for key, var in env_keys:
        if not isinstance(var, str) or not var:
            raise ConfigError(f"{key}: expected the name of an environment variable")
        if var not in environ or environ[var] == "":
            missing.append(f"{var} (named by {key})")
        else:
            secrets[var] = environ[var]
    if missing:  # every one at once: an operator sets them in one go, not one per run
        raise ConfigError(f"environment variable{'s' if len(missing) > 1 else ''} not set:"
                          f" {', '.join(missing)}; export {'them' if len(missing) > 1 else 'it'}"
                          " before starting")

    return Config(server=server, storage=storage, api=api, retry=retry, worker=worker,
                  connectors=tuple(connectors), outbox=outbox, links=links, polling=polling,
                  channels=channels,
                  subscribers=subscribers, source=source, secrets=MappingProxyType(secrets))


def _tables(raw: Any, name: str) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(raw, list):
        raise ConfigError(f"[[{name}]]: expected an array of tables")
    out = []
    for i, table in enumerate(raw):
        if not isinstance(table, dict):
            raise ConfigError(f"{name}[{i}]: expected a table")
        out.append((f"{name}[{i}]", dict(table)))
    return out


def _unique_name(table: dict[str, Any], where: str, seen: set[str], what: str) -> str:
    name = _take(table, "name", where, str, None)
    if name is None:
        raise ConfigError(f"{where}.name: required")
    if not _NAME.fullmatch(name):
        raise ConfigError(f"{where}.name: {name!r} must be lowercase letters, digits, - or _")
    if name in seen:
        raise ConfigError(f"{where}.name: {name!r} is used by another {what}")
    seen.add(name)
    return name


def _channels(raw: Any, connectors: set[str]) -> tuple[ChannelConfig, ...]:
    channels, seen = [], set()
    for where, table in _tables(raw, "channels"):
        name = _unique_name(table, where, seen, "channel")
        tags = _take(table, "tags", where, list, [])
        if not all(isinstance(t, str) for t in tags):
            raise ConfigError(f"{where}.tags: expected a list of strings")
        oms = None
        if "oms" in table:
            oms_t = _take(table, "oms", where, dict, {})
            oms_t, oms_where = dict(oms_t), f"{where}.oms"
            connector = _take(oms_t, "connector", oms_where, str, None)
            if connector is None:
                raise ConfigError(f"{oms_where}.connector: required (the connector to push to)")
            if connector not in connectors:
                raise ConfigError(f"{oms_where}.connector: {connector!r} is not an enabled"
                                  " connector")
            delay = float(_take(oms_t, "delay_minutes", oms_where, (int, float), 0))
            if delay < 0:
                raise ConfigError(f"{oms_where}.delay_minutes: must be 0 or more")
            oms = OmsPushConfig(connector=connector,
                                store_id=_take(oms_t, "store_id", oms_where, (int, str), None),
                                delay_minutes=delay)
            _no_leftovers(oms_t, f"[{oms_where}]")
        mapping = dict(_take(table, "custom_fields", where, dict, {}))
        for field_name, target in mapping.items():
            if (not isinstance(target, str) or not target
                    or any(not part for part in target.split("."))):
                raise ConfigError(f"{where}.custom_fields.{field_name}: expected the partner's"
                                  f" field name (dots for nested fields), got {target!r}")
        timing = _take(table, "invoice_timing", where, str, None)
        if timing is not None and timing not in INVOICE_TIMINGS:
            raise ConfigError(f"{where}.invoice_timing: one of {', '.join(INVOICE_TIMINGS)}")
        source = _take(table, "source_connector", where, str, None)
        if source is not None and source not in connectors:
            raise ConfigError(f"{where}.source_connector: {source!r} is not an enabled connector")
        channel = ChannelConfig(
            name=name, warehouse_group=_take(table, "warehouse_group", where, str, None),
            internal=_take(table, "internal", where, bool, source is None),
            description=_take(table, "description", where, str, ""), tags=tuple(tags),
            oms=oms, push_fulfillment_updates=_take(table, "push_fulfillment_updates", where,
                                                    bool, False),
            custom_fields=MappingProxyType(mapping), invoice_timing=timing,
            source_connector=source, key=where)
        _no_leftovers(table, where)
        if channel.internal and source is not None:
            raise ConfigError(f"{where}.source_connector: an internal channel has no partner"
                              " source; set internal = false or remove it")
        channels.append(channel)
    return tuple(channels)


def _subscribers(raw: Any) -> tuple[SubscriberConfig, ...]:
    subscribers, seen = [], set()
    for where, table in _tables(raw, "subscribers"):
        name = _unique_name(table, where, seen, "subscriber")
        url = _take(table, "url", where, str, None)
        if url is None or not re.match(r"^https?://[^/]", url):
            raise ConfigError(f"{where}.url: required, an http(s) URL")
        secret_env = _take(table, "secret_env", where, str, None)
        if secret_env is None:
            raise ConfigError(f"{where}.secret_env: required (the variable holding whsec_...)")
        events = _take(table, "events", where, list, None)
        if not events or not all(isinstance(e, str) for e in events):
            raise ConfigError(f"{where}.events: a non-empty list of event types, or [\"*\"]")
        unknown = sorted(set(events) - set(EVENT_TYPES) - {"*"})
        if unknown:
            raise ConfigError(f"{where}.events: unknown {', '.join(unknown)}; known:"
                              f" {', '.join(EVENT_TYPES)}")
        _no_leftovers(table, where)
        subscribers.append(SubscriberConfig(name=name, url=url, secret_env=secret_env,
                                            events=tuple(events), key=where))
    return tuple(subscribers)


def load(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    path = Path(path)
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse(doc, environ, source=str(path))
