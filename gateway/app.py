"""Wiring: one Gateway owns storage, connectors, intake, the worker, the poller and the scheduler,
and builds the aiohttp application that serves the API and the webhooks."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import os
import secrets
import signal
import socket
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from gateway import api, logs, routes
from gateway.backoff import RetryPolicy
from gateway.commands import Commands
from gateway.config import Config
from gateway.connector import Connector, connector_class
from gateway.console import add_console
from gateway.domain.records import PartnerLink, now_iso
from gateway.errors import ConfigError, Undeliverable
from gateway.intake import GroupCommitter, webhook_handler
from gateway.metrics import Metrics
from gateway.names import (
    PUSH_FULFILLMENT,
    PUSH_ORDER,
    SUBSCRIBER,
    connector_destination,
    split_destination,
)
from gateway.outbound import Outbound
from gateway.outbox import OutboxDispatcher
from gateway.ratelimit import RateBudget
from gateway.scheduler import Poller, build_scheduler
from gateway.stock import Stock
from gateway.subscribers import Subscribers
from gateway.worker import InboxWorker
from storage import INBOX, OutboxMessage

log = logs.get("gateway.app")
USER_AGENT = "fulfillment-gateway/0.1"
LINGER_SECONDS = 1.0


class Gateway:
    def __init__(self, config: Config, *, first_poll_delay_seconds: float | None = None,
                 run_scheduler: bool = True, run_outbox: bool = True,
                 serving: bool = True) -> None:
        self.config = config
        self.storage = config.open_storage()
        self.metrics = Metrics()
        self.connectors: dict[str, Connector] = {}
        self.first_poll_delay_seconds = config.polling.first_run_delay_seconds \
            if first_poll_delay_seconds is None else first_poll_delay_seconds
        self.run_scheduler = run_scheduler
        self.run_outbox = run_outbox
        # A serving gateway takes webhooks, runs the worker, the outbox and the scheduler; a
        # one-off command (poll) only opens storage and the connectors.
        self.serving = serving
        self.session: aiohttp.ClientSession | None = None
        self.committer = GroupCommitter(self.storage, on_batch=self.metrics.intake_batch.observe)
        policy = RetryPolicy.from_config(config.retry)
        self.outbound = Outbound(config)
        self.subscribers = Subscribers(config, USER_AGENT)
        # Who this process is, in every claim and lease it takes.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.dispatcher = OutboxDispatcher(self.storage, self._send, self.outbound, policy,
                                           self.metrics, config.outbox.concurrency,
                                           config.outbox.batch_size, owner=self.owner)
        self.commands = Commands(config, self.storage, self.outbound, self.connectors,
                                 wake_dispatcher=self.dispatcher.wake)
        self.stock = Stock(self.commands, self.outbound)
        self.worker = InboxWorker(self.storage, self.connectors, policy, self.metrics,
                                  config.worker.concurrency, config.worker.batch_size,
                                  intake_busy=self.committer.busy, commands=self.commands,
                                  owner=self.owner)
        self.commands.wake_worker = self.worker.wake
        self.worker.claims.lease_seconds = config.worker.lease_seconds
        self.dispatcher.claims.lease_seconds = config.worker.lease_seconds
        self.committer.on_commit = self.worker.wake
        self.receive_webhook = webhook_handler(
            self.connectors, self.committer, config.server.max_body_bytes,
            config.server.body_timeout_seconds, self.metrics)
        self.storage.busy = self.committer.busy
        self.storage.on_work = self._wake_for
        self.poller = Poller(self.storage, self.connectors, self.metrics, self.owner,
                             on_records=self.worker.wake)
        self.scheduler: Any = None
        self.started = False
        self.tokens = config.api_tokens()
        # Connector classes are resolved now so a bad type fails before anything starts.
        self._classes = {c.name: connector_class(c) for c in config.connectors if c.enabled}
        self._check_channels()

    def _check_channels(self) -> None:
        def does(name: str, operation: str) -> bool:
            cls = self._classes[name]
            return operation in cls.declared_operations() and operation not in cls.unsupported

        for channel in self.config.channels:
            if channel.oms and not does(channel.oms.connector, PUSH_ORDER):
                why = self._classes[channel.oms.connector].unsupported.get(PUSH_ORDER)
                raise ConfigError(f"{channel.key}.oms.connector: connector"
                                  f" {channel.oms.connector!r} cannot take orders"
                                  f" ({PUSH_ORDER}{': ' + why if why else ''})")
            if channel.source_connector and channel.push_fulfillment_updates and \
                    not does(channel.source_connector, PUSH_FULFILLMENT):
                raise ConfigError(f"{channel.key}.push_fulfillment_updates: connector"
                                  f" {channel.source_connector!r} cannot take fulfillment updates")

    def _budget(self, connector: str, per_window: int, window_seconds: float) -> RateBudget:
        """A connector's request budget, held in storage: shared by every process."""
        return RateBudget(per_window, window_seconds, key=connector_destination(connector),
                          reserve=self.storage.reserve_rate, pause_shared=self.storage.pause_rate)

    async def _watched(self, connector: str, role: str) -> AsyncIterator[PartnerLink]:
        after: str | None = None
        while True:
            page = await self.storage.links_to_watch(connector, role, now_iso(), after, 200)
            for link in page:
                yield link
            if len(page) < 200:
                return
            after = page[-1].fo_id

    def _wake_for(self, queue: str) -> None:
        """Another process (or this one) committed new work on a shared database."""
        (self.worker.wake if queue == INBOX else self.dispatcher.wake)()

    async def _send(self, message: OutboxMessage) -> Mapping[str, Any]:
        """The dispatcher's one way out: a subscriber delivery or a connector's operation."""
        kind, name = split_destination(message.destination)
        if kind == SUBSCRIBER:
            return await self.subscribers.deliver(name, message)
        connector = self.connectors.get(name)
        if connector is None:
            raise Undeliverable(f"connector {name} is not configured or not enabled")
        return await connector.perform(message.kind, message)

    @property
    def scheduler_running(self) -> bool:
        return bool(self.scheduler and self.scheduler.running)

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()  # what did start (database threads) would keep the process alive
            raise

    async def _start(self) -> None:
        await self.storage.open()
        if self.serving:
            await self.storage.join(self.owner)  # before anything is taken or claimed
        applied = await self.storage.migrate()
        if applied:
            log.info("storage.migrated", applied=applied, storage=self.config.storage.where)
        self.session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
        for cfg in self.config.connectors:
            if cfg.enabled:
                self.connectors[cfg.name] = self._classes[cfg.name](
                    cfg, self.config, self.session, self.metrics, budgets=self._budget,
                    links=self._watched, records=self.storage)
        self.started = True
        if not self.serving:
            log.info("gateway.started", role="command", storage=self.config.storage.where)
            return  # a one-off command (poll): the serving process does the rest
        await self.committer.start()
        await self.worker.start()
        if self.run_outbox:
            await self.dispatcher.start()
        if self.run_scheduler:
            self.scheduler = build_scheduler(
                self.poller, self.first_poll_delay_seconds, self.config.worker.inbox_retention_days,
                outbox_retention_days=self.config.outbox.retention_days)
            self.scheduler.start()
        log.info("gateway.started", connectors=sorted(self.connectors),
                 storage=self.config.storage.where)

    async def stop(self) -> None:
        if self.scheduler and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        await self.committer.stop()
        await self.worker.stop()
        await self.dispatcher.stop()
        self.subscribers.close()
        if self.session:
            await self.session.close()
        await self.storage.close()
        if self.started:  # a start that failed says so once, where it failed
            log.info("gateway.stopped")
        self.started = False

    def runner(self) -> web.AppRunner:
        """The web app with the server's connection limits and the JSON access log."""
        server = self.config.server
        logs.access_log_webhooks(server.access_log_webhooks)
        return web.AppRunner(
            self.web_app(), keepalive_timeout=server.idle_timeout_seconds,
            # after an answer sent before the body was read (408, 413), the rest is read and
            # dropped this long at most, then the connection closes
            lingering_time=LINGER_SECONDS,
            access_log=logging.getLogger("aiohttp.access") if server.access_log else None,
            access_log_class=logs.AccessLog)

    async def _lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    def web_app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.server.max_body_bytes)
        app[routes.GATEWAY_KEY] = self
        tokens = lambda: self.tokens  # noqa: E731 - read at each request
        for route in api.ROUTES:
            app.router.add_route(route.method, route.path, routes.guard(
                route, tokens if route.secured else None))
        add_console(app, self)
        app.router.add_route("*", routes.CATCH_ALL, routes.guard(api.NO_ROUTE, None))
        app.cleanup_ctx.append(self._lifecycle)
        return app


async def until_stopped() -> None:
    """Wait for SIGTERM or SIGINT."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # not on every platform
            loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()


async def serve(config: Config, *, first_poll_delay_seconds: float | None = None) -> None:
    """Bind the port, then start (storage, worker, outbox, scheduler) and serve until SIGTERM
    or SIGINT; then stop in order: intake, worker, storage. A port that cannot be had stops
    the process before it has touched the database."""
    gateway = Gateway(config, first_poll_delay_seconds=first_poll_delay_seconds)
    sock = bind(config.server.host, config.server.port, "server.port", "server.host")
    runner = gateway.runner()
    try:
        await runner.setup()
        await web.SockSite(runner, sock).start()
        settle_garbage_collector()
        log.info("gateway.listening", host=config.server.host, port=sock.getsockname()[1])
        await until_stopped()
        log.info("gateway.stopping")
    finally:
        await runner.cleanup()
        sock.close()


# Objects allocated between two young collections (Python's default: 700). Nearly everything a
# request allocates dies by reference counting within the request; the cyclic collector only
# finds what survived, so collecting less often costs no memory that matters.
YOUNG_COLLECTION_THRESHOLD = 10_000


def settle_garbage_collector() -> None:
    """Move what start-up made (modules, configuration, routes: ~75,000 objects) out of the
    cyclic collector's reach, and let it run less often. Measured in bench/pipeline.py at
    1,000 webhooks/s: with the defaults the collector took 7.5 % of the serving core, and each
    full collection (one every 2-3 s) walked every start-up object, a 60-80 ms pause for every
    request in flight; after this, a few young collections a second (1-2 ms together) and
    no full collection in a 20 s run."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, older, oldest)


def bind(host: str, port: int | None, port_key: str, host_key: str | None = None
         ) -> socket.socket:
    """A bound socket for host:port, or a ConfigError naming the key (or option) to change."""
    host_key = host_key or port_key
    try:
        infos = socket.getaddrinfo(host, port or 0, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise ConfigError(f"{host_key}: cannot listen on {host} ({reason}); use an address"
                          " of this machine, e.g. 127.0.0.1 or 0.0.0.0") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"{port_key}: {host}:{port} is in use by another process;"
                              f" stop it or choose another port") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise ConfigError(f"{port_key}: not allowed to listen on {host}:{port}"
                              f" ({exc.strerror}); choose a port above 1023") from None
        raise ConfigError(f"{host_key}: cannot listen on {host}:{port} ({exc.strerror or exc});"
                          " use an address of this machine, e.g. 127.0.0.1 or 0.0.0.0") from None
    sock.setblocking(False)
    return sock


async def listen(runner: web.AppRunner, host: str, port: int | None, key: str) -> None:
    """Start a site on host:port, with the same clear refusals as `serve`."""
    await web.SockSite(runner, bind(host, port, key)).start()
