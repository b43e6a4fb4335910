"""Polling: one APScheduler job per enabled feed of each connector, in the gateway's own loop.

A feed run reads the feed's cursor, asks the partner for what changed since, and commits the
records into the inbox together with the new cursor: a crash re-polls, never skips.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from gateway import logs
from gateway.connector import Connector, Feed
from gateway.domain.records import now_iso, utc_iso
from gateway.errors import Conflict, NotFound, classify
from gateway.metrics import Metrics
from storage import FeedState, Storage

log = logs.get("gateway.scheduler")
MISFIRE_GRACE_SECONDS = 300
LEASE_SECONDS = 300.0  # a feed run's lease, extended every third of it while the run lasts
CLAIM_RETRY_SECONDS = 0.2
MANUAL_WAIT_SECONDS = 15.0  # a poll asked for waits this long for a run under way elsewhere
# A scheduled run is skipped when another process started one within this share of the
# interval: once per interval, however many processes run.
SCHEDULED_SLACK = 0.9


class Poller:
    """Runs connectors' feeds: each run is claimed from storage with a lease, so one process
    at a time polls a feed, and a scheduled run happens once per interval however many
    processes share the database."""

    def __init__(self, storage: Storage, connectors: Mapping[str, Connector], metrics: Metrics,
                 owner: str, on_records: Callable[[], None] = lambda: None,
                 lease_seconds: float = LEASE_SECONDS) -> None:
        self.storage = storage
        self.connectors = connectors
        self.metrics = metrics
        self.owner = owner
        self.on_records = on_records
        self.lease_seconds = lease_seconds
        self.manual_wait_seconds = min(lease_seconds, MANUAL_WAIT_SECONDS)
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def jobs(self) -> list[tuple[str, Feed, float]]:
        """(connector, feed, interval in minutes) of every enabled feed."""
        return [(name, feed, connector.feed_interval(feed))
                for name, connector in self.connectors.items()
                for feed in connector.enabled_feeds()]

    def _feeds(self, name: str, feed_name: str | None) -> tuple[Connector, list[Feed]]:
        connector = self.connectors.get(name)
        if connector is None or not connector.feeds:
            raise NotFound(f"no enabled connector {name!r} polls")
        if feed_name is None:
            return connector, connector.enabled_feeds()
        feed = connector.feed(feed_name)
        if feed is None:
            raise NotFound(f"connector {name!r} has no feed {feed_name!r}; its feeds: "
                           + ", ".join(f.name for f in connector.feeds))
        if not connector.feed_enabled(feed):
            raise Conflict(f"feed {feed_name!r} of connector {name!r} is turned off"
                           f" ({feed.toggle} = false)")
        return connector, [feed]

    async def poll(self, name: str, feed_name: str | None = None) -> dict[str, Any]:
        """Poll now: every enabled feed of the connector, or the one named. A run under way
        elsewhere is waited for (up to MANUAL_WAIT_SECONDS, then 409), not doubled."""
        connector, feeds = self._feeds(name, feed_name)
        paused = {s.feed: s for s in await self.storage.feed_states(name) if s.paused_by}
        if feed_name is not None and feed_name in paused:
            state = paused[feed_name]
            raise Conflict(f"feed {feed_name!r} of connector {name!r} is paused (by"
                           f" {state.paused_by} at {state.paused_at}); resume it first")
        results: dict[str, Any] = {}
        failure: Exception | None = None
        for feed in feeds:
            if feed.name in paused:
                results[feed.name] = {"records": 0, "new_events": 0,
                                      "paused_by": paused[feed.name].paused_by}
                continue
            try:
                results[feed.name] = await self.run_feed(connector, feed, scheduled=False)
            except Exception as exc:  # noqa: BLE001 - the other feeds still run
                failure = failure or exc
        if failure is not None:
            raise failure
        return {"connector": name,
                "records": sum(r["records"] for r in results.values()),
                "new_events": sum(r["new_events"] for r in results.values()),
                "feeds": results}

    async def _claim(self, connector: Connector, feed: Feed, scheduled: bool
                     ) -> FeedState | None:
        deadline = time.monotonic() + self.manual_wait_seconds
        while True:
            now = datetime.now(UTC)
            started_before = utc_iso(now - timedelta(
                minutes=connector.feed_interval(feed) * SCHEDULED_SLACK)) if scheduled else None
            state = await self.storage.claim_feed_run(
                connector.name, feed.name, self.owner, utc_iso(now),
                utc_iso(now + timedelta(seconds=self.lease_seconds)), started_before)
            if state is not None or scheduled:
                return state
            if time.monotonic() > deadline:
                raise Conflict(f"feed {feed.name!r} of {connector.name!r} is being polled by"
                               " another process")
            await asyncio.sleep(CLAIM_RETRY_SECONDS)

    async def run_feed(self, connector: Connector, feed: Feed, scheduled: bool
                       ) -> dict[str, Any] | None:
        """One run of one feed; None when a scheduled run was already made this interval."""
        name = connector.name
        if scheduled and any(s.feed == feed.name and s.paused_by
                             for s in await self.storage.feed_states(name)):
            return None  # an operator paused it
        async with self._locks.setdefault((name, feed.name), asyncio.Lock()):
            state = await self._claim(connector, feed, scheduled)
            if state is None:
                return None
            keeper = asyncio.create_task(self._keep_lease(name, feed.name))
            try:
                result = await connector.poll(feed, state.cursor)
            except Exception as exc:
                self.metrics.polls.labels(name, "error").inc()
                await self.storage.record_poll_error(name, feed.name, self.owner,
                                                     classify(exc).text, now_iso())
                log.error("poll.failed", connector=name, feed=feed.name, error=str(exc))
                raise
            finally:
                keeper.cancel()
            inserted = await self.storage.commit_poll(
                name, feed.name, self.owner, result.records, result.cursor, result.stats,
                now_iso())
            self.metrics.polls.labels(name, "ok").inc()
            if isinstance(result.stats.get("requests"), int):
                self.metrics.poll_requests.labels(name, feed.name).observe(
                    result.stats["requests"])
            if inserted:
                self.on_records()
            summary = {"records": len(result.records), "new_events": inserted,
                       "cursor": result.cursor, **result.stats}
            log.info("poll.done", connector=name, feed=feed.name, **summary)
            return summary

    async def _keep_lease(self, name: str, feed: str) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            until = utc_iso(datetime.now(UTC) + timedelta(seconds=self.lease_seconds))
            if not await self.storage.extend_feed_lease(name, feed, self.owner, until):
                log.warning("poll.lease_lost", connector=name, feed=feed)
                return

    async def run_scheduled(self, name: str, feed_name: str) -> None:
        """A scheduled run: failures are logged and recorded, and the next run tries again."""
        connector = self.connectors[name]
        feed = connector.feed(feed_name)
        assert feed is not None
        try:
            await self.run_feed(connector, feed, scheduled=True)
        except Exception:  # noqa: BLE001 - already logged and recorded; the next run retries
            pass


async def purge_inbox(storage: Storage, retention_days: float) -> int:
    """Delete processed events past retention (a delivery repeated after that is new)."""
    cutoff = utc_iso(datetime.now(UTC) - timedelta(days=retention_days))
    deleted = await storage.purge_processed_inbox(cutoff)
    log.info("inbox.purged", deleted=deleted, received_before=cutoff)
    return deleted


async def purge_outbox(storage: Storage, retention_days: float) -> int:
    """Delete sent and cancelled outbound messages past retention (dead ones stay)."""
    cutoff = utc_iso(datetime.now(UTC) - timedelta(days=retention_days))
    deleted = await storage.purge_finished_outbox(cutoff)
    log.info("outbox.purged", deleted=deleted, finished_before=cutoff)
    return deleted


async def finish_watching(storage: Storage) -> int:
    """Links whose watch time for late corrections is over become complete."""
    finished = await storage.finish_watching_links(now_iso())
    if finished:
        log.info("links.complete", count=finished)
    return finished


MAINTENANCE = "@gateway"  # the feed_state rows of the gateway's own scheduled jobs
MAINTENANCE_LEASE = timedelta(hours=1)


async def once_per_interval(storage: Storage, owner: str, job: str, interval: timedelta,
                            work: Callable[[], Awaitable[Any]]) -> Any:
    """Run `work` unless another process sharing the storage started `job` within this
    interval (or holds it now): each purge runs once per interval however many replicas
    run. The job's run is leased and recorded like a feed run, under MAINTENANCE."""
    now = datetime.now(UTC)
    started_before = utc_iso(now - interval * SCHEDULED_SLACK)
    if await storage.claim_feed_run(MAINTENANCE, job, owner, utc_iso(now),
                                    utc_iso(now + MAINTENANCE_LEASE), started_before) is None:
        log.info("maintenance.skipped", job=job, reason="run elsewhere within the interval")
        return None
    try:
        result = await work()
    except Exception as exc:
        await storage.record_poll_error(MAINTENANCE, job, owner, repr(exc), now_iso())
        raise
    await storage.commit_poll(MAINTENANCE, job, owner, [], "", {"result": result}, now_iso())
    return result


def build_scheduler(poller: Poller, first_run_delay_seconds: float = 30.0,
                    inbox_retention_days: float = 0.0,
                    outbox_retention_days: float = 0.0) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone=UTC)
    storage, owner = poller.storage, poller.owner

    def maintenance(job: str, every: timedelta, first_in: timedelta,
                    work: Callable[[], Awaitable[Any]]) -> None:
        scheduler.add_job(once_per_interval, IntervalTrigger(seconds=every.total_seconds()),
                          args=[storage, owner, job, every, work], id=job, coalesce=True,
                          max_instances=1, misfire_grace_time=MISFIRE_GRACE_SECONDS,
                          next_run_time=datetime.now(UTC) + first_in)

    if outbox_retention_days > 0:
        maintenance("outbox:purge", timedelta(hours=24), timedelta(minutes=6),
                    lambda: purge_outbox(storage, outbox_retention_days))
    if inbox_retention_days > 0:
        maintenance("inbox:purge", timedelta(hours=24), timedelta(minutes=5),
                    lambda: purge_inbox(storage, inbox_retention_days))
    maintenance("links:finish", timedelta(hours=1), timedelta(minutes=7),
                lambda: finish_watching(storage))
    first = datetime.now(UTC) + timedelta(seconds=first_run_delay_seconds)
    for name, feed, interval in poller.jobs():
        scheduler.add_job(poller.run_scheduled, IntervalTrigger(minutes=interval),
                          args=[name, feed.name], id=f"poll:{name}:{feed.name}", coalesce=True,
                          max_instances=1, misfire_grace_time=MISFIRE_GRACE_SECONDS,
                          next_run_time=first)
    return scheduler
