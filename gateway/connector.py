"""The connector contract (DESIGN.md) and how a connector type is found by its config name.

gateway/ names no partner: a connector type `foo` is the package `connectors.foo`, which exposes
`CONNECTOR`, a `Connector` subclass. Each connector talks to its partner only through the one
`aiohttp.ClientSession` it is given.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import aiohttp
from aiohttp import web

from gateway.config import Config, ConnectorConfig
from gateway.domain.records import Shipment
from gateway.errors import ConfigError
from gateway.metrics import Metrics
from storage import InboxEvent, NewInboxEvent

WEBHOOKS = "webhooks"
POLL = "poll"
PUSH_ORDERS = "push_orders"  # push_order and cancel_order
PUSH_FULFILLMENT = "push_fulfillment"
_TYPE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class PollResult:
    records: list[NewInboxEvent]
    cursor: str
    stats: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookRequest:
    """What verification may look at: never more than the partner sent."""

    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes


class Connector:
    """Base of every connector; a type overrides the capabilities it has and lists them."""

    capabilities: ClassVar[frozenset[str]] = frozenset()
    # Request headers the normalizer needs later; only these are stored with the event.
    stored_headers: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: ConnectorConfig, app_config: Config,
                 session: aiohttp.ClientSession, metrics: Metrics) -> None:
        self.config = config
        self.name = config.name
        self.session = session
        self.metrics = metrics

    def verify(self, request: WebhookRequest) -> str:
        """Check the delivery is the partner's; return its de-duplication key.

        Raises WebhookRejected when it is not.
        """
        raise NotImplementedError

    async def normalize(self, event: InboxEvent) -> list[Shipment]:
        raise NotImplementedError

    async def poll(self, cursor: str | None) -> PollResult:
        raise NotImplementedError

    # Outbound calls, made only by the outbox dispatcher. Each gets the message's payload
    # (an order as `gateway.outbound.order_payload` builds it, or a fulfillment update),
    # must be idempotent on the partner side, and returns what to record: for an order at
    # least `partner_order_id`. Failures raise the PartnerError that says whether to retry.

    async def push_order(self, order: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    async def cancel_order(self, order: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    async def push_fulfillment(self, update: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def status(self) -> dict[str, Any]:
        """Connector-specific health: rate-limit state and the like."""
        return {}

    @classmethod
    def sandbox(cls, config: ConnectorConfig, app_config: Config) -> web.Application:
        """A stand-in server for this partner, accepting the credentials config names."""
        raise NotImplementedError

    @classmethod
    async def demo(cls, ctx: DemoContext) -> None:
        """Script this partner's sandbox for `fulfillment-gateway demo`; optional."""
        return None


@dataclass(frozen=True)
class DemoContext:
    """What a connector's demo scenario gets: where things listen, and how to talk and print."""

    connector: ConnectorConfig
    app_config: Config
    api_url: str
    api_token: str
    webhook_url: str
    session: aiohttp.ClientSession
    say: Callable[[str], None]


def connector_class(config: ConnectorConfig) -> type[Connector]:
    if not _TYPE.match(config.type):
        raise ConfigError(f"{config.key}.type: {config.type!r} is not a connector type name")
    try:
        module = importlib.import_module(f"connectors.{config.type}")
    except ModuleNotFoundError:
        raise ConfigError(f"{config.key}.type: no connector type {config.type!r}"
                          " (expected a package connectors/{config.type}/)") from None
    cls = getattr(module, "CONNECTOR", None)
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise ConfigError(f"{config.key}.type: connectors.{config.type} has no CONNECTOR class")
    return cls
