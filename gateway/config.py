"""Configuration: config.toml parsed once into frozen dataclasses, validated at start.

Nothing else reads the file. Secrets never live in it: every key ending in `_env` names an
environment variable, and a missing variable stops the process with the key that named it.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from gateway.connector import Option, parse_settings
from gateway.errors import ConfigError
from gateway.names import EVENT_TYPES, InvoiceTiming
from storage import Storage, open_backend

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_RETRY_ATTEMPTS = 8
DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
DEFAULT_RETRY_JITTER = 0.2
NAME_PATTERN = r"[a-z][a-z0-9_-]{0,63}"  # a connector's, channel's or subscriber's name
_NAME = re.compile(NAME_PATTERN)
Name = Annotated[str, Field(pattern=f"^{NAME_PATTERN}$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]  # a variable's name


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


class Section(BaseModel):
    """A config.toml table: exactly these keys, each of its type (TOML's own: a string is no
    number), checked when the file is loaded."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Count = Annotated[int, Field(ge=1)]
Seconds = Annotated[float, Field(ge=0)]


class ServerConfig(Section):
    host: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    max_body_bytes: Count = DEFAULT_MAX_BODY_BYTES
    # A connection idle this long (between requests, or before a request's headers have all
    # arrived) is closed; keep it above a load balancer's own idle time-out.
    idle_timeout_seconds: Positive = 60.0
    body_timeout_seconds: Positive = 30.0  # a request body must arrive within this
    access_log: bool = True  # one JSON line per request: method, path, status, duration
    # Accepted webhooks too (every one is in the inbox anyway; at thousands a second the
    # lines cost a tenth of intake's CPU). Refused ones are always logged.
    access_log_webhooks: bool = False


class StorageConfig(Section):
    backend: Literal["sqlite", "postgresql"] = "sqlite"
    path: Annotated[str, Field(min_length=1)] = "data/gateway.sqlite3"  # sqlite
    dsn_env: EnvName = "GATEWAY_DATABASE_URL"  # postgresql: the variable holding the DSN
    pool_size: Count = 10  # postgresql: connections per process

    @property
    def where(self) -> str:
        """What logs name: the file, or the database by the variable holding its DSN (the
        DSN itself may carry a password)."""
        return self.path if self.backend == "sqlite" else f"postgresql (${self.dsn_env})"


class ApiConfig(Section):
    tokens_env: EnvName = "GATEWAY_API_TOKENS"


class ConsoleConfig(Section):
    """The operator console under /console/: off unless `tokens_env` names a variable."""

    # The variable holding the operators' tokens, `name:token` comma-separated; separate
    # from the API's, so an API client cannot act in the console. Every action is audited
    # with the operator's name.
    tokens_env: EnvName | None = None
    session_idle_minutes: Positive = 30.0  # a session unused this long must log in again


class RetryConfig(Section):
    """One retry policy for every retried thing: inbox events and outbound messages."""

    attempts: Count = DEFAULT_RETRY_ATTEMPTS
    schedule_seconds: Annotated[tuple[Seconds, ...], BeforeValidator(_tuple),
                                Field(min_length=1)] = DEFAULT_RETRY_SCHEDULE
    jitter: Annotated[float, Field(ge=0, le=1)] = DEFAULT_RETRY_JITTER


class WorkerConfig(Section):
    # Inbox events normalized at once: each may wait on a partner's answer (its rate budget
    # paces the calls), so this hides the partner's latency, not the gateway's CPU.
    concurrency: Count = 16
    batch_size: Count = 64
    # Processed inbox events older than this are deleted (daily); their delivery keys go
    # with them, so a duplicate older than this is stored again and, being idempotent,
    # reprocessed without effect. 0 keeps everything.
    inbox_retention_days: NonNegative = 30.0
    # How long a claim on an inbox event or outbox message holds without being extended (a
    # live process extends it every third of this): how soon a dead process's work is taken
    # over by another sharing the database.
    lease_seconds: Positive = 60.0


class OutboxConfig(Section):
    """The dispatcher of every outbound call: partner pushes and event deliveries."""

    concurrency: Count = 16  # calls in flight per destination (one connector, one subscriber)
    # Messages held at once: claimed, in flight, or sent and not yet recorded. Well above
    # `concurrency`, so senders are not starved while a batch of outcomes is committed.
    batch_size: Count = 256
    request_timeout_seconds: Positive = 10.0  # event deliveries; connectors have their own
    # Sent and cancelled messages older than this are deleted (daily); dead ones stay until
    # replayed. Once-only keys (an invoice per shipment) are kept as long. 0 keeps everything.
    retention_days: NonNegative = 90.0


class PollingConfig(Section):
    # After `serve` starts, its feeds first run this many seconds later (then each at its
    # interval); a manual poll runs at once.
    first_run_delay_seconds: NonNegative = 30.0


class LinksConfig(Section):
    # Once an FO is fulfilled or cancelled, its partner links stay watched this long for late
    # corrections (a relabel, a cancelled-then-refulfilled order) before they are complete.
    watch_days: NonNegative = 7.0


class OmsPushConfig(Section):
    connector: Name  # an enabled connector (checked against [[connectors]])
    store_id: int | str | None = None
    delay_minutes: NonNegative = 0.0  # 0 pushes when the FO is created


PartnerField = Annotated[str, Field(pattern=r"^[^.]+(\.[^.]+)*$")]  # dots reach into objects


class ChannelConfig(Section):
    name: Name
    warehouse_group: str | None = None
    internal: bool | None = None  # default: true, unless the channel has a source_connector
    description: str = ""
    tags: Annotated[tuple[str, ...], BeforeValidator(_tuple)] = ()
    oms: OmsPushConfig | None = None
    push_fulfillment_updates: bool = False
    # gateway custom-field name -> the partner's field name, verbatim
    custom_fields: dict[str, PartnerField] = Field(default_factory=dict)
    invoice_timing: InvoiceTiming | None = None
    # For a channel whose orders come from a partner: the connector its updates go back to.
    source_connector: Name | None = None
    key: str = "channels[?]"  # where in config.toml it came from (set by parse)

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


EventName = Literal[(*EVENT_TYPES, "*")]  # type: ignore[valid-type]


class SubscriberConfig(Section):
    name: Name
    url: Annotated[str, Field(pattern=r"^https?://[^/]")]
    secret_env: EnvName  # the variable holding its whsec_... secret(s)
    events: Annotated[tuple[EventName, ...], BeforeValidator(_tuple), Field(min_length=1)]
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
    console: ConsoleConfig = ConsoleConfig()
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

    def console_tokens(self) -> dict[str, str]:
        """Operator name -> token; empty when the console is off."""
        if self.console.tokens_env is None:
            return {}
        return _named_tokens(self.secret(self.console.tokens_env), self.console.tokens_env)


def _named_tokens(raw: str, var: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in (e.strip() for e in raw.split(",")):
        name, sep, token = entry.partition(":")
        if not entry:
            continue
        if not sep or not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", name) or len(token) < 16:
            raise ConfigError(f"console.tokens_env ({var}): each entry is name:token, the name"
                              " letters, digits and ._@- (up to 64), the token at least 16"
                              " characters")
        if name in found:
            raise ConfigError(f"console.tokens_env ({var}): operator {name!r} named twice")
        found[name] = token
    if not found:
        raise ConfigError(f"console.tokens_env ({var}): no operator tokens")
    return found


def _take(table: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...], default: Any) -> Any:
    if key not in table:
        return default
    return Option(key, kind, default).parse({key: table.pop(key)}, where)


def _positive(value: float, where: str) -> None:
    if value <= 0:
        raise ConfigError(f"{where}: must be greater than 0, got {value!r}")


class _Problems:
    """Every problem of the file, said at once: `where.key: what is wrong`."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def check(self, model: type[M], table: Any, where: str, **extra: Any) -> M | None:
        if not isinstance(table, dict):
            self.found.append(f"{where}: expected a table")
            return None
        try:
            return model.model_validate({**table, **extra})
        except ValidationError as exc:
            for item in exc.errors(include_url=False):
                path = where
                for part in item["loc"]:
                    path += f"[{part}]" if isinstance(part, int) else f".{part}"
                if item["type"] == "missing":
                    message = "required"
                elif item["type"] == "extra_forbidden":
                    known = ", ".join(k for k in _table_at(model, item["loc"][:-1]).model_fields
                                      if k != "key")
                    message = f"unknown key (known: {known})"
                else:  # TOML's words: an array, not a tuple
                    message = f"{item['msg']}, got {item['input']!r}".replace(
                        "a valid tuple", "an array")
                self.found.append(f"{path}: {message}")
            return None

    def add(self, message: str) -> None:
        self.found.append(message)

    def raise_any(self) -> None:
        if self.found:
            raise ConfigError("; ".join(self.found))


M = TypeVar("M", bound=BaseModel)


def _table_at(model: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel]:
    """The section model a nested table of `model` is (e.g. [channels.oms])."""
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        inner = next((t for t in (field.annotation, *get_args(field.annotation))
                      if isinstance(t, type) and issubclass(t, BaseModel)), None) \
            if field else None
        if inner is None:
            break
        model = inner
    return model


def parse(doc: Mapping[str, Any], environ: Mapping[str, str] | None = None,
          source: str = "<memory>") -> Config:
    """Validate a parsed TOML document; every `*_env` key must name a set variable."""
    environ = os.environ if environ is None else environ
    doc = dict(doc)
    problems = _Problems()
    sections = {name: problems.check(model, doc.pop(name, {}), name) for name, model in (
        ("server", ServerConfig), ("storage", StorageConfig), ("api", ApiConfig),
        ("retry", RetryConfig), ("worker", WorkerConfig), ("outbox", OutboxConfig),
        ("polling", PollingConfig), ("links", LinksConfig), ("console", ConsoleConfig))}

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

    enabled = {c.name for c in connectors if c.enabled}
    channels = _channels(doc.pop("channels", []), enabled, problems)
    subscribers = _subscribers(doc.pop("subscribers", []), problems)
    for key in sorted(doc):
        problems.add(f"{key}: unknown table or key (known: server, storage, api, retry,"
                     " worker, outbox, polling, links, console, connectors, channels,"
                     " subscribers)")
    problems.raise_any()
    server, storage, api = sections["server"], sections["storage"], sections["api"]
    assert isinstance(server, ServerConfig) and isinstance(storage, StorageConfig)
    assert isinstance(api, ApiConfig)

    console = sections["console"]
    assert isinstance(console, ConsoleConfig)
    env_keys = [("api.tokens_env", api.tokens_env)]
    if console.tokens_env is not None:
        env_keys.append(("console.tokens_env", console.tokens_env))
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

    if console.tokens_env is not None:
        _named_tokens(secrets[console.tokens_env], console.tokens_env)  # refused at start
    return Config(server=server, storage=storage, api=api,
                  retry=sections["retry"], worker=sections["worker"],  # type: ignore[arg-type]
                  connectors=tuple(connectors), outbox=sections["outbox"],  # type: ignore[arg-type]
                  links=sections["links"], polling=sections["polling"],  # type: ignore[arg-type]
                  channels=channels, subscribers=subscribers, console=console,
                  source=source, secrets=MappingProxyType(secrets))


def _tables(raw: Any, name: str) -> list[tuple[str, Any]]:
    if not isinstance(raw, list):
        raise ConfigError(f"[[{name}]]: expected an array of tables")
    return [(f"{name}[{i}]", table) for i, table in enumerate(raw)]


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


def _channels(raw: Any, connectors: set[str], problems: _Problems) -> tuple[ChannelConfig, ...]:
    """The declared shape, then what only the whole file can tell: names unique, connectors
    enabled, one channel per source."""
    channels: list[ChannelConfig] = []
    for where, table in _tables(raw, "channels"):
        channel = problems.check(ChannelConfig, table, where, key=where)
        if channel is None:
            continue
        if channel.name in {c.name for c in channels}:
            problems.add(f"{where}.name: {channel.name!r} is used by another channel")
        if channel.oms and channel.oms.connector not in connectors:
            problems.add(f"{where}.oms.connector: {channel.oms.connector!r} is not an enabled"
                         " connector")
        source = channel.source_connector
        if source is not None and source not in connectors:
            problems.add(f"{where}.source_connector: {source!r} is not an enabled connector")
        if channel.internal and source is not None:
            problems.add(f"{where}.source_connector: an internal channel has no partner"
                         " source; set internal = false or remove it")
        if source is not None and any(c.source_connector == source for c in channels):
            problems.add(f"{where}.source_connector: {source!r} is the source of another"
                         " channel too; its orders need one channel")
        if channel.internal is None:
            channel = channel.model_copy(update={"internal": source is None})
        channels.append(channel)
    return tuple(channels)


def _subscribers(raw: Any, problems: _Problems) -> tuple[SubscriberConfig, ...]:
    subscribers: list[SubscriberConfig] = []
    for where, table in _tables(raw, "subscribers"):
        subscriber = problems.check(SubscriberConfig, table, where, key=where)
        if subscriber is None:
            continue
        if subscriber.name in {s.name for s in subscribers}:
            problems.add(f"{where}.name: {subscriber.name!r} is used by another subscriber")
        subscribers.append(subscriber)
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
