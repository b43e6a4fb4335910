"""Webhook intake: check, then persist with group commit, then acknowledge.

Order of checks: unknown or disabled connector (404), body over the limit (413, read no
further), the connector's verification (401), not JSON (400). Only after the event's batch has
committed (synchronous=FULL) does the partner get its 2xx, so an acknowledged event survives
a crash or a power loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from gateway.connector import Connector, WebhookRequest
from gateway.domain.records import delivery_hash
from gateway.errors import (
    BadRequest,
    ClientGone,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    WebhookRejected,
)
from gateway.loops import gather_arrivals
from gateway.metrics import Metrics
from storage import NewInboxEvent, Storage

MAX_BATCH = 1024
# While more than this many webhooks arrive per window, the worker yields the CPU to intake:
# 2,500/s, above what the whole pipeline sustains on one core (bench/pipeline.py), so load the
# gateway can keep up with is processed as it comes. At 100 (1,000/s) the pipeline benchmark's
# steady 1,000/s paused the worker for its first 3 s: 3,000 events behind from the start.
BURST_EVENTS = 250
BURST_WINDOW_SECONDS = 0.1
# Load above the threshold is more than the pipeline can process as it comes, so buffering it
# first loses little; beyond this the worker runs beside intake all the same. At 3 s, a burst
# of 30,000 (bench/intake.py) that arrived a little slower than usual outlasted the pause, the
# worker took the core, and intake fell to a quarter of the no-op's rate for the rest of it.
BURST_MAX_SECONDS = 10.0
# A burst begins anew only after this long without one: load that hovers around the threshold
# is one long burst, not a new one every time a window falls short, which used to keep the
# worker pausing for as long as the load lasted.
BURST_QUIET_SECONDS = 1.0
ACCEPTED = b'{"status":"accepted"}'


class GroupCommitter:
    """One writer task; each caller awaits the commit of the batch its event went into.

    A batch is committed as soon as the writer is free, something is waiting and the event
    loop has no more arrivals to add (gather_arrivals: it went round twice with none): under
    load events pile up while the previous batch commits and while the requests already
    received are read, so batches grow without a fixed wait. With 64 clients that took
    batches from ~25 to ~60 events and the CPU per webhook down by a sixth.

    Storage says which deliveries were new (a repeat of a stored one is acknowledged and
    stores nothing); a repeat of one still waiting in a batch waits for that batch's commit,
    so nothing is acknowledged before it is durable.
    """

    def __init__(self, storage: Storage, on_commit: Callable[[], None] = lambda: None,
                 on_batch: Callable[[int], None] = lambda size: None) -> None:
        self.storage = storage
        self.on_commit = on_commit
        self.on_batch = on_batch
        self._waiting: list[tuple[NewInboxEvent, int, asyncio.Future[bool]]] = []
        self._in_batch: dict[int, asyncio.Future[bool]] = {}
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._window_start = 0.0
        self._window_count = 0
        self._busy_until = 0.0
        self._busy_since = 0.0

    async def start(self) -> None:
        # Kept: asyncio.get_running_loop() makes a getpid() system call each time (3.11),
        # 2 % of intake's CPU when called per webhook.
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="group-commit")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _, _, future in self._waiting:
            if not future.done():
                future.set_exception(RuntimeError("gateway is stopping"))
        self._waiting.clear()

    async def submit(self, event: NewInboxEvent) -> bool:
        """Store a webhook event durably; False when it was a repeat and stored nothing."""
        key = delivery_hash(event.connector, event.delivery_key)
        pending = self._in_batch.get(key)
        if pending is not None:
            await asyncio.shield(pending)
            return False
        future: asyncio.Future[bool] = (self._loop or asyncio.get_running_loop()).create_future()
        self._in_batch[key] = future
        self._waiting.append((event, key, future))
        self._wakeup.set()
        return await future

    def busy(self) -> bool:
        """Is a burst of webhooks arriving? (more than BURST_EVENTS in the last window, for
        less than BURST_MAX_SECONDS: load that lasts is no burst, and the worker and the
        checkpoints must keep up with it instead of waiting it out)"""
        now = time.monotonic()
        return now < self._busy_until and now - self._busy_since < BURST_MAX_SECONDS

    def _count(self, events: int) -> None:
        now = time.monotonic()
        if now - self._window_start > BURST_WINDOW_SECONDS:
            self._window_start, self._window_count = now, 0
        self._window_count += events
        if self._window_count >= BURST_EVENTS:
            if now >= self._busy_until + BURST_QUIET_SECONDS:
                self._busy_since = now  # a new burst
            self._busy_until = now + BURST_WINDOW_SECONDS

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._waiting:
                await gather_arrivals(lambda: len(self._waiting), MAX_BATCH)
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                try:
                    new = await self.storage.store_webhooks([event for event, _, _ in batch])
                except Exception as exc:  # noqa: BLE001 - every waiter learns of the failure
                    for _, key, future in batch:
                        self._in_batch.pop(key, None)
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, key, future), is_new in zip(batch, new, strict=True):
                    self._in_batch.pop(key, None)
                    if not future.done():
                        future.set_result(is_new)
                self._count(len(batch))
                self.on_batch(len(batch))
                self.on_commit()


async def read_limited(request: web.Request, limit: int, timeout_seconds: float) -> bytes:
    """The body, refusing at its declared length, or as soon as a chunked body passes it;
    one that does not arrive within the time is RequestTimeout, one cut off by the client
    ClientGone (neither is the gateway's error)."""
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"body is {length} bytes; the limit is {limit}")
    if length is not None:
        # Nearly always the whole body came with the headers: no waiting, so no timer.
        arrived = request.content.read_nowait(length) if length else b""
        if len(arrived) == length:
            return arrived
    else:
        arrived = b""
    try:
        async with asyncio.timeout(timeout_seconds):
            if length is not None:
                return arrived + await request.content.readexactly(length - len(arrived))
            chunks, size = [], 0
            async for chunk in request.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"body is over the limit of {limit} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
    except TimeoutError:
        raise RequestTimeout(f"the body did not arrive within {timeout_seconds:g} s") from None
    except (asyncio.IncompleteReadError, ConnectionError, aiohttp.ClientError) as exc:
        raise ClientGone(f"the client closed the connection mid-body ({type(exc).__name__})"
                         ) from None


def webhook_handler(connectors: Mapping[str, Connector], committer: GroupCommitter,
                    max_body_bytes: int, body_timeout_seconds: float, metrics: Metrics
                    ) -> Callable[[web.Request], Awaitable[web.Response]]:
    accepted: dict[tuple[str, str], Any] = {}

    async def receive(request: web.Request) -> web.Response:
        name = request.match_info["connector"]
        connector = connectors.get(name)
        if connector is None or not connector.webhooks:
            metrics.webhooks.labels("unknown", "not_found").inc()
            raise NotFound(f"no enabled connector {name!r} takes webhooks")
        try:
            body = await read_limited(request, max_body_bytes, body_timeout_seconds)
            delivery = WebhookRequest(request.headers, request.query, body)
            key = connector.verify(delivery)
            if key is not None:
                delivery.json()  # whatever the connector looked at, only JSON is stored
        except PayloadTooLarge:
            metrics.webhooks.labels(name, "too_large").inc()
            raise
        except (ClientGone, RequestTimeout) as exc:
            metrics.webhooks.labels(name, exc.code).inc()
            raise
        except WebhookRejected:
            metrics.webhooks.labels(name, "unverified").inc()
            raise
        except BadRequest:
            metrics.webhooks.labels(name, "malformed").inc()
            raise
        if key is None:  # the partner's, and nothing to act on
            metrics.webhooks.labels(name, "ignored").inc()
            return web.Response(body=ACCEPTED, content_type="application/json")
        headers = {h: request.headers[h] for h in connector.stored_headers if h in request.headers}
        stored = await committer.submit(NewInboxEvent(name, key, "webhook", body, headers))
        result = (name, "accepted" if stored else "duplicate")
        if result not in accepted:
            accepted[result] = metrics.webhooks.labels(*result)
        accepted[result].inc()
        return web.Response(body=ACCEPTED, content_type="application/json")

    return receive
