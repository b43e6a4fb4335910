"""The inbox worker: take due events, normalize them, and apply their records in batches.

Normalizing (which may call the partner) runs a few events at a time; applying is one writer
task that commits whatever has been normalized in one transaction, records and "processed"
marks together, like the intake's group commit. A batch that fails is applied again event by
event, so one bad event fails alone. A failure is retried on the retry policy's schedule;
after the last attempt, or at once for an error retrying cannot fix, the event becomes a dead
letter. Events are claimed with a lease (gateway/claims.py): after a crash they are claimed again.
Every step is safe to run twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway import logs
from gateway.backoff import RetryPolicy
from gateway.claims import ClaimLoop
from gateway.commands import Commands
from gateway.connector import Connector, Record
from gateway.domain.records import now_iso, utc_iso
from gateway.errors import Undeliverable, classify
from gateway.intake import BURST_MAX_SECONDS
from gateway.ledger import Outcome
from gateway.loops import cancel_all, take_batch
from gateway.metrics import Metrics
from storage import INBOX, InboxEvent, Storage

log = logs.get("gateway.worker")
MAX_APPLY_BATCH = 256
BURST_PAUSE_SECONDS = 0.2
BURST_PAUSES = int(BURST_MAX_SECONDS / BURST_PAUSE_SECONDS) + 1


@dataclass
class _Normalized:
    event: InboxEvent
    records: Sequence[Record] = ()
    error: BaseException | None = None
    started: float = 0.0


class InboxWorker:
    def __init__(self, storage: Storage, connectors: Mapping[str, Connector], policy: RetryPolicy,
                 metrics: Metrics, concurrency: int = 4, batch_size: int = 64,
                 intake_busy: Callable[[], bool] = lambda: False,
                 commands: Commands | None = None, owner: str = "worker") -> None:
        self.storage = storage
        self.commands = commands
        self.intake_busy = intake_busy
        self.connectors = connectors
        self.policy = policy
        self.metrics = metrics
        self._slots = asyncio.Semaphore(concurrency)
        self._applied: asyncio.Queue[_Normalized] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._normalizing: set[asyncio.Task[None]] = set()
        self._processed: dict[tuple[str, str], Any] = {}
        self.claims: ClaimLoop[InboxEvent] = ClaimLoop(
            INBOX, capacity=batch_size,
            claim=lambda limit, lease: storage.claim_inbox_events(owner, limit, lease),
            next_due=storage.next_inbox_due, take=self._take,
            extend=lambda ids, lease: storage.extend_claims(owner, INBOX, ids, lease),
            release=lambda ids: storage.release_claims(owner, INBOX, ids),
            pause=self._yield_to_intake)

    def wake(self) -> None:
        self.claims.wake()

    async def start(self) -> None:
        stats = await self.storage.inbox_stats()
        if stats["depth"]:
            log.info("inbox.pending_at_start", count=stats["depth"])
        self.claims.start()
        self._tasks = [asyncio.create_task(self._apply_loop(), name="inbox-apply")]

    async def stop(self) -> None:
        await self.claims.stop()
        await cancel_all([*self._tasks, *self._normalizing])
        self._tasks = []

    @property
    def running(self) -> bool:
        return self.claims.running and bool(self._tasks) and not any(t.done() for t in self._tasks)

    # claiming and normalizing

    async def _yield_to_intake(self) -> None:
        # Acknowledging comes first: during a burst of webhooks (at most BURST_MAX_SECONDS)
        # the inbox buffers, and the worker claims nothing: a batch taken per pause cost a
        # fifth of intake's CPU (bench/intake.py, py-spy).
        for _ in range(BURST_PAUSES):
            if not self.intake_busy():
                return
            await asyncio.sleep(BURST_PAUSE_SECONDS)

    async def _take(self, event: InboxEvent) -> None:
        await self._slots.acquire()
        task = asyncio.create_task(self._normalize(event))
        self._normalizing.add(task)
        task.add_done_callback(self._normalizing.discard)

    async def _normalize(self, event: InboxEvent) -> None:
        item = _Normalized(event, started=time.perf_counter())
        try:
            connector = self.connectors.get(event.connector)
            if connector is None:
                raise Undeliverable(f"connector {event.connector} is not configured or not"
                                    " enabled")
            item.records = await connector.normalize(event)
            for record in item.records:
                if not isinstance(record, connector.produces):
                    raise Undeliverable(f"connector {event.connector} produced a"
                                        f" {type(record).__name__}, which its type does not"
                                        " declare")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is retried or dead-lettered
            item.error = exc
        finally:
            self._slots.release()
        await self._applied.put(item)

    # applying

    async def _apply_loop(self) -> None:
        while True:
            # Bounded, so intake commits waiting for the write lock are not held up long.
            batch = await take_batch(self._applied, MAX_APPLY_BATCH)
            try:
                await self._apply(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - storage trouble: leave them pending, retry
                log.exception("inbox.apply_failed", events=len(batch))
                await asyncio.sleep(1.0)
            finally:
                await self.claims.finished([item.event.id for item in batch])

    async def _apply(self, batch: list[_Normalized]) -> None:
        good = [item for item in batch if item.error is None]
        for item in batch:
            if item.error is not None:
                await self._failed(item.event, item.error)
        if not good:
            return
        try:
            outcomes = await self._commit(good)
        except Exception:  # noqa: BLE001 - find the event that fails, apply the rest
            if len(good) == 1:
                raise
            outcomes = []
            for item in good:
                try:
                    outcomes += await self._commit([item])
                except Exception as exc:  # noqa: BLE001
                    await self._failed(item.event, exc)
        for item, outcome in outcomes:
            self._report(item, outcome)

    async def _commit(self, items: list[_Normalized]) -> list[tuple[_Normalized, Outcome]]:
        assert self.commands is not None
        outcomes = await self.commands.apply_inbox(
            [(item.event.id, item.records) for item in items])
        return list(zip(items, outcomes, strict=True))

    def _report(self, item: _Normalized, outcome: Outcome) -> None:
        event = item.event
        self.metrics.reconcile_seconds.observe(time.perf_counter() - item.started)
        key = (event.connector, "processed")
        if key not in self._processed:
            self._processed[key] = self.metrics.inbox_processed.labels(*key)
        self._processed[key].inc()
        if not (outcome.status_changes or outcome.unmatched or outcome.recorded):
            return
        bound = log.bind(connector=event.connector, delivery_key=event.delivery_key,
                         inbox_event_id=event.id)
        for change in outcome.status_changes:
            bound.info("fulfillment_order.status_changed", fo_id=change.fo_id,
                       old=change.old, new=change.new)
        for shipment_id in outcome.unmatched:
            bound.warning("shipment.unmatched", shipment_id=shipment_id)
        bound.info("inbox.processed", records=len(item.records),
                   recorded=len(outcome.recorded), ignored=len(outcome.ignored))

    async def _failed(self, event: InboxEvent, exc: BaseException) -> None:
        bound = log.bind(connector=event.connector, delivery_key=event.delivery_key,
                         inbox_event_id=event.id)
        attempts = event.attempts + 1
        failure = classify(exc)
        error = failure.text
        delay = self.policy.next_try(failure, attempts)
        if delay is None:
            await self.storage.dead_letter_inbox_event(event.id, attempts, error, now_iso())
            self.metrics.inbox_processed.labels(event.connector, "dead_letter").inc()
            bound.error("inbox.dead_letter", attempts=attempts, error=error)
            return
        due = utc_iso(datetime.now(UTC) + timedelta(seconds=delay))
        await self.storage.retry_inbox_event(event.id, attempts, due, error)
        self.metrics.inbox_processed.labels(event.connector, "retried").inc()
        bound.warning("inbox.retry", attempts=attempts, retry_in_seconds=round(delay, 3),
                      error=error)


