"""The outbox dispatcher: sends every outbound message, partner pushes and event deliveries.

Claims the first due pending message of each sequence (one FO's messages to one destination
go in order), sends up to `[outbox] concurrency` per destination at once (a connector's own
rate budget, shared with its polling, paces its calls further), and records outcomes in
batches, one transaction each, together with whatever those outcomes cause (the partner's
order id on the FO, `order.pushed`, a cancel that must follow). Failures retry on the retry
policy's schedule, honouring Retry-After; an answer that retrying cannot fix (400, 401, 403,
404, 422) is a dead letter at once; a destination that succeeds again after failing several
times in a row gets its backed-off messages at once. A crash after a partner's 2xx and before
the outcome is recorded sends the message again: delivery is at least once, and every push
is idempotent on the partner's side (the connector sends the FO id as the partner's order
key).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway import logs
from gateway.backoff import RetryPolicy
from gateway.claims import ClaimLoop
from gateway.domain.records import now_iso, utc_iso
from gateway.errors import classify
from gateway.loops import cancel_all, take_batch
from gateway.metrics import Metrics
from gateway.names import EVENT
from gateway.outbound import Outbound
from storage import OUTBOX, OutboxMessage, Storage, Transaction

log = logs.get("gateway.outbox")
MAX_FINISH_BATCH = 256
RECOVERY_AFTER_FAILURES = 3
Send = Callable[[OutboxMessage], Awaitable[Mapping[str, Any]]]


@dataclass
class _Sent:
    message: OutboxMessage
    result: Mapping[str, Any] = field(default_factory=dict)
    error: BaseException | None = None


class OutboxDispatcher:
    def __init__(self, storage: Storage, send: Send, outbound: Outbound, policy: RetryPolicy,
                 metrics: Metrics, concurrency: int = 4, batch_size: int = 64,
                 owner: str = "dispatcher") -> None:
        self.storage = storage
        self.send = send
        self.outbound = outbound
        self.policy = policy
        self.metrics = metrics
        self.concurrency = concurrency
        self.batch_size = batch_size
        # Per destination: a queue and `concurrency` senders taking from it.
        self._queues: dict[str, asyncio.Queue[OutboxMessage]] = {}
        self._finished: asyncio.Queue[_Sent] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._senders: list[asyncio.Task[None]] = []
        # Claimed, in flight, or sent and not yet recorded: at most batch_size at once.
        self.claims: ClaimLoop[OutboxMessage] = ClaimLoop(
            OUTBOX, capacity=batch_size,
            claim=lambda limit, lease: storage.claim_outbox_messages(owner, limit, lease),
            next_due=storage.next_outbox_due, take=self._take,
            extend=lambda ids, lease: storage.extend_claims(owner, OUTBOX, ids, lease),
            release=lambda ids: storage.release_claims(owner, OUTBOX, ids))
        self._counters: dict[tuple[str, str], Any] = {}
        # Retryable failures in a row, per destination. A success after several means the
        # destination was down and is back: its messages waiting out a backoff become due at
        # once, so its backlog goes now, not hours later. (One failing message among
        # successes never counts up, so it keeps its backoff.)
        self._failures_in_a_row: dict[str, int] = {}

    def wake(self) -> None:
        self.claims.wake()

    async def start(self) -> None:
        self.claims.start()
        self._tasks = [asyncio.create_task(self._finish_loop(), name="outbox-finish")]

    async def stop(self) -> None:
        await self.claims.stop()
        await cancel_all([*self._tasks, *self._senders])
        self._tasks, self._senders, self._queues = [], [], {}

    @property
    def running(self) -> bool:
        return self.claims.running and bool(self._tasks) and not any(t.done() for t in self._tasks)

    # claiming and sending

    async def _take(self, message: OutboxMessage) -> None:
        self._queue(message.destination).put_nowait(message)

    def _queue(self, destination: str) -> asyncio.Queue[OutboxMessage]:
        queue = self._queues.get(destination)
        if queue is None:
            queue = self._queues[destination] = asyncio.Queue()
            self._senders += [asyncio.create_task(self._sender(queue),
                                                  name=f"outbox-send:{destination}")
                              for _ in range(self.concurrency)]
        return queue

    async def _sender(self, queue: asyncio.Queue[OutboxMessage]) -> None:
        while True:
            message = await queue.get()
            item = _Sent(message)
            try:
                item.result = dict(await self.send(message) or {})
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure is retried or dead-lettered
                item.error = exc
            self._finished.put_nowait(item)

    # recording outcomes

    async def _finish_loop(self) -> None:
        while True:
            batch = await take_batch(self._finished, MAX_FINISH_BATCH)
            try:
                await self._record(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one by one; what still fails stays pending
                failed = batch if len(batch) == 1 else \
                    [item for item in batch if not await self._record_alone(item)]
                if failed:
                    log.exception("outbox.record_failed", messages=len(failed),
                                  ids=[item.message.id for item in failed])
                    await asyncio.sleep(1.0)
            finally:
                await self.claims.finished([item.message.id for item in batch])

    async def _record_alone(self, item: _Sent) -> bool:
        try:
            await self._record([item])
        except Exception:  # noqa: BLE001 - left pending, sent again later: at least once
            return False
        return True

    async def _record(self, batch: list[_Sent]) -> None:
        at = now_iso()

        async def change(tx: Transaction) -> list[tuple[_Sent, str, str | None, float]]:
            logged: list[tuple[_Sent, str, str | None, float]] = []
            # Delivered events cause nothing further: one statement marks them all.
            events = [item for item in batch if item.error is None and item.message.kind == EVENT]
            await tx.mark_outbox_events_sent([item.message.id for item in events], at)
            for item in batch:
                m = item.message
                if item.error is None:
                    if m.kind != EVENT:
                        recorded = await tx.mark_outbox_sent(m.id, at, item.result)
                        await self.outbound.after_sent(tx, m, item.result, recorded, at)
                    logged.append((item, "sent", None, 0.0))
                    continue
                failure = classify(item.error)
                attempts = m.attempts + 1
                delay = self.policy.next_try(failure, attempts)
                if delay is None:
                    recorded = await tx.dead_letter_outbox_message(
                        m.id, attempts, failure.text, at, failure.kind)
                    logged.append((item, "dead_letter", failure.text, 0.0))
                else:
                    due = utc_iso(datetime.now(UTC) + timedelta(seconds=delay))
                    recorded = await tx.retry_outbox_message(
                        m.id, attempts, due, failure.text, at, failure.kind)
                    logged.append((item, "retried", failure.text, delay))
                await self.outbound.after_failed(tx, m, failure, delay is None, recorded, at)
            for destination in self._recovered(logged):
                hastened = await tx.hasten_outbox_retries(destination, at)
                if hastened:
                    log.info("outbox.destination_recovered", destination=destination,
                             retries_due_now=hastened)
            return logged

        logged = await self.storage.run(change)
        for item, result, error, delay in logged:
            m = item.message
            self._counter(m.destination, result).inc()
            if result == "sent":
                continue
            bound = log.bind(destination=m.destination, kind=m.kind, outbox_message_id=m.id,
                             fo_id=m.fo_id)
            if result == "dead_letter":
                bound.error("outbox.dead_letter", attempts=m.attempts + 1, error=error)
            else:
                bound.warning("outbox.retry", attempts=m.attempts + 1,
                              retry_in_seconds=round(delay, 3), error=error)

    def _recovered(self, logged: list[tuple[_Sent, str, str | None, float]]) -> set[str]:
        recovered = set()
        for item, result, _, _ in logged:
            destination = item.message.destination
            if result == "retried":
                self._failures_in_a_row[destination] = \
                    self._failures_in_a_row.get(destination, 0) + 1
            elif result == "sent":
                if self._failures_in_a_row.pop(destination, 0) >= RECOVERY_AFTER_FAILURES:
                    recovered.add(destination)
        return recovered

    def _counter(self, destination: str, result: str) -> Any:
        key = (destination, result)
        if key not in self._counters:
            self._counters[key] = self.metrics.outbox_sent.labels(*key)
        return self._counters[key]
