"""The inbox worker: claim pending events, normalize, reconcile, mark processed, in one commit.

A failure is retried on the retry policy's schedule; after the last attempt, or at once for an
error retrying cannot fix, the event becomes a dead letter. Events claimed when the process
died are released at start and claimed again. Every step is safe to run twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from gateway import ledger, logs
from gateway.backoff import RetryPolicy
from gateway.connector import Connector
from gateway.errors import PartnerRateLimited, PartnerRejected
from gateway.metrics import Metrics
from gateway.records import now_iso, parse_iso, utc_iso
from storage import InboxEvent, Storage

log = logs.get("gateway.worker")
IDLE_WAIT_SECONDS = 5.0


class InboxWorker:
    def __init__(self, storage: Storage, connectors: Mapping[str, Connector], policy: RetryPolicy,
                 metrics: Metrics, concurrency: int = 4, batch_size: int = 64) -> None:
        self.storage = storage
        self.connectors = connectors
        self.policy = policy
        self.metrics = metrics
        self.batch_size = batch_size
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        released = await self.storage.release_claims()
        if released:
            log.info("inbox.claims_released", count=released)
        self._task = asyncio.create_task(self._run(), name="inbox-worker")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._in_flight):
            task.cancel()
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            free = self.batch_size - len(self._in_flight)
            events = await self.storage.claim_inbox_events(free, now_iso()) if free > 0 else []
            for event in events:
                await self._slots.acquire()
                task = asyncio.create_task(self._process_in_slot(event))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            if events:
                continue
            await self._sleep_until_due()

    async def _sleep_until_due(self) -> None:
        wait = IDLE_WAIT_SECONDS
        due = await self.storage.next_inbox_due()
        if due is not None:
            wait = min(wait, max((parse_iso(due) - datetime.now(UTC)).total_seconds(), 0.01))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=wait)

    async def _process_in_slot(self, event: InboxEvent) -> None:
        try:
            await self.process(event)
        finally:
            self._slots.release()
            self.wake()

    async def process(self, event: InboxEvent) -> None:
        bound = log.bind(connector=event.connector, delivery_key=event.delivery_key,
                         inbox_event_id=event.id)
        connector = self.connectors.get(event.connector)
        if connector is None:
            await self._give_up(event, "connector is not configured or not enabled", bound)
            return
        started = time.perf_counter()
        try:
            shipments = await connector.normalize(event)
            at = now_iso()
            async with self.storage.transaction() as tx:
                outcome = await ledger.record_shipments(tx, shipments, at)
                await tx.mark_inbox_processed(event.id, at)
        except asyncio.CancelledError:
            raise
        except PartnerRejected as exc:
            await self._give_up(event, str(exc), bound)
            return
        except Exception as exc:  # noqa: BLE001 - any failure is retried, then dead-lettered
            await self._retry(event, exc, bound)
            return
        self.metrics.reconcile_seconds.observe(time.perf_counter() - started)
        self.metrics.inbox_processed.labels(event.connector, "processed").inc()
        for change in outcome.status_changes:
            bound.info("fulfillment_order.status_changed", fo_id=change.fo_id,
                       old=change.old, new=change.new)
        for shipment_id in outcome.unmatched:
            bound.warning("shipment.unmatched", shipment_id=shipment_id)
        bound.info("inbox.processed", shipments=len(shipments), recorded=len(outcome.recorded),
                   ignored=len(outcome.ignored))

    async def _retry(self, event: InboxEvent, exc: Exception, bound: logs.structlog.BoundLogger
                     ) -> None:
        attempts = event.attempts + 1
        error = f"{type(exc).__name__}: {exc}"
        if self.policy.exhausted(attempts):
            await self._give_up(event, error, bound, attempts)
            return
        retry_after = exc.retry_after if isinstance(exc, PartnerRateLimited) else None
        delay = self.policy.delay(attempts, retry_after)
        due = utc_iso(datetime.now(UTC) + timedelta(seconds=delay))
        await self.storage.retry_inbox_event(event.id, attempts, due, error)
        self.metrics.inbox_processed.labels(event.connector, "retried").inc()
        bound.warning("inbox.retry", attempts=attempts, retry_in_seconds=round(delay, 3),
                      error=error)

    async def _give_up(self, event: InboxEvent, error: str, bound: logs.structlog.BoundLogger,
                       attempts: int | None = None) -> None:
        attempts = event.attempts + 1 if attempts is None else attempts
        await self.storage.dead_letter_inbox_event(event.id, attempts, error, now_iso())
        self.metrics.inbox_processed.labels(event.connector, "dead_letter").inc()
        bound.error("inbox.dead_letter", attempts=attempts, error=error)
