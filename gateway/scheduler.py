"""Polling: one APScheduler job per connector that can poll, in the gateway's own event loop.

A poll reads the connector's cursor, asks the partner for what changed since, and commits the
records into the inbox together with the new cursor: a crash re-polls, never skips.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from gateway import logs
from gateway.connector import POLL, Connector
from gateway.domain.records import now_iso, utc_iso
from gateway.errors import NotFound
from gateway.metrics import Metrics
from storage import Storage

log = logs.get("gateway.scheduler")
MISFIRE_GRACE_SECONDS = 300


class Poller:
    def __init__(self, storage: Storage, connectors: Mapping[str, Connector], metrics: Metrics,
                 on_records: Callable[[], None] = lambda: None) -> None:
        self.storage = storage
        self.connectors = connectors
        self.metrics = metrics
        self.on_records = on_records
        self._locks: dict[str, asyncio.Lock] = {}

    def pollable(self) -> list[str]:
        return [n for n, c in self.connectors.items() if POLL in c.capabilities]

    async def poll(self, name: str) -> dict[str, Any]:
        """One poll now; a poll already running for this connector is waited for, not doubled."""
        connector = self.connectors.get(name)
        if connector is None or POLL not in connector.capabilities:
            raise NotFound(f"no enabled connector {name!r} can poll")
        async with self._locks.setdefault(name, asyncio.Lock()):
            state = await self.storage.poll_state(name)
            cursor = state["cursor"] if state else None
            try:
                result = await connector.poll(cursor)
            except Exception as exc:
                self.metrics.polls.labels(name, "error").inc()
                await self.storage.record_poll_error(name, f"{type(exc).__name__}: {exc}",
                                                     now_iso())
                log.error("poll.failed", connector=name, error=str(exc))
                raise
            inserted = await self.storage.commit_poll(name, result.records, result.cursor,
                                                      result.stats, now_iso())
            self.metrics.polls.labels(name, "ok").inc()
            if inserted:
                self.on_records()
            summary = {"connector": name, "records": len(result.records), "new_events": inserted,
                       "cursor": result.cursor, **result.stats}
            log.info("poll.done", **summary)
            return summary

    async def poll_quietly(self, name: str) -> None:
        """A scheduled poll: failures are logged and recorded, and the next run tries again."""
        try:
            await self.poll(name)
        except Exception:  # noqa: BLE001 - already logged and recorded; the next run retries
            pass


async def purge_inbox(storage: Storage, retention_days: float,
                      forget: Callable[[Iterable[tuple[str, str]]], None] = lambda keys: None
                      ) -> int:
    """Delete processed events past retention; `forget` drops their webhook keys from the
    in-memory de-duplication, which otherwise would only grow."""
    cutoff = utc_iso(datetime.now(UTC) - timedelta(days=retention_days))
    deleted, webhook_keys = await storage.purge_processed_inbox(cutoff)
    forget(webhook_keys)
    log.info("inbox.purged", deleted=deleted, received_before=cutoff)
    return deleted


async def purge_outbox(storage: Storage, retention_days: float) -> int:
    """Delete sent and cancelled outbound messages past retention (dead ones stay)."""
    cutoff = utc_iso(datetime.now(UTC) - timedelta(days=retention_days))
    deleted = await storage.purge_finished_outbox(cutoff)
    log.info("outbox.purged", deleted=deleted, finished_before=cutoff)
    return deleted


def build_scheduler(poller: Poller, intervals: Mapping[str, float],
                    first_run_delay_seconds: float = 30.0,
                    inbox_retention_days: float = 0.0,
                    forget: Callable[[Iterable[tuple[str, str]]], None] = lambda keys: None,
                    outbox_retention_days: float = 0.0) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone=UTC)
    if outbox_retention_days > 0:
        scheduler.add_job(purge_outbox, IntervalTrigger(hours=24),
                          args=[poller.storage, outbox_retention_days], id="outbox:purge",
                          coalesce=True, max_instances=1,
                          misfire_grace_time=MISFIRE_GRACE_SECONDS,
                          next_run_time=datetime.now(UTC) + timedelta(minutes=6))
    if inbox_retention_days > 0:
        scheduler.add_job(purge_inbox, IntervalTrigger(hours=24),
                          args=[poller.storage, inbox_retention_days, forget],
                          id="inbox:purge",
                          coalesce=True, max_instances=1,
                          misfire_grace_time=MISFIRE_GRACE_SECONDS,
                          next_run_time=datetime.now(UTC) + timedelta(minutes=5))
    first = datetime.now(UTC) + timedelta(seconds=first_run_delay_seconds)
    for name in poller.pollable():
        scheduler.add_job(poller.poll_quietly, IntervalTrigger(minutes=intervals[name]),
                          args=[name], id=f"poll:{name}", coalesce=True, max_instances=1,
                          misfire_grace_time=MISFIRE_GRACE_SECONDS, next_run_time=first)
    return scheduler
