"""What both SQL backends do the same way: inbox retries and dead letters, the queues' stats,
replaying and discarding dead letters, purging sent messages, feed runs under a lease, a
partner's shared request budget, and the links a feed watches. Mixed into a backend's storage
class, which provides `_write()` (a transaction, yielding its connection), `_read()` and
`_lock_rate()` (serialising the budget's read-then-write across processes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

from gateway.domain.records import PartnerLink, parse_iso, utc_iso
from storage import FeedState, NewInboxEvent
from storage.sql.tx import Row, SqlConnection, from_json, link_from_row, to_json


class SqlQueues:
    def _write(self) -> AbstractAsyncContextManager[SqlConnection]:
        raise NotImplementedError

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        raise NotImplementedError

    async def _lock_rate(self, db: SqlConnection, key: str) -> None:
        """Hold the budget `key` until the transaction ends (a single writer needs nothing)."""

    # the inbox

    async def retry_inbox_event(self, event_id: int, attempts: int, next_attempt_at: str,
                                error: str) -> None:
        async with self._write() as db:
            await db.execute(
                "UPDATE inbox_events SET status = 'pending', attempts = ?, next_attempt_at = ?,"
                " last_error = ? WHERE id = ? AND status = 'pending' AND attempts = ?",
                (attempts, next_attempt_at, error, event_id, attempts - 1))

    async def dead_letter_inbox_event(self, event_id: int, attempts: int, error: str,
                                      at: str) -> None:
        async with self._write() as db:
            await db.execute(
                "UPDATE inbox_events SET status = 'dead', attempts = ?, last_error = ?,"
                " processed_at = ? WHERE id = ? AND status = 'pending'",
                (attempts, error, at, event_id))

    async def next_inbox_due(self) -> str | None:
        rows = await self._read(
            "SELECT MIN(next_attempt_at) AS due FROM inbox_events WHERE status = 'pending'")
        return rows[0]["due"]

    async def inbox_stats(self) -> dict[str, Any]:
        # Each query names one partial index's condition exactly, so neither scans history.
        pending = (await self._read(
            "SELECT COUNT(*) AS n, MIN(received_at) AS oldest FROM inbox_events"
            " WHERE status = 'pending'"))[0]
        dead = (await self._read(
            "SELECT COUNT(*) AS n FROM inbox_events WHERE status = 'dead'"))[0]
        oldest = pending["oldest"]
        age = (datetime.now(UTC) - parse_iso(oldest)).total_seconds() if oldest else 0.0
        return {"depth": pending["n"], "oldest_age_seconds": max(age, 0.0), "dead": dead["n"]}


    # dead letters

    async def discard_dead_letter(self, dead_letter_id: str, at: str,
                                  reason: str | None = None) -> bool:
        source, number = dead_letter_number(dead_letter_id)
        if number is None:
            return False
        async with self._write() as db:
            if source == "inbox":
                cur = await db.execute(
                    "UPDATE inbox_events SET status = 'discarded', processed_at = ?,"
                    " discard_reason = ? WHERE id = ? AND status = 'dead'", (at, reason, number))
            else:
                cur = await db.execute(
                    "UPDATE outbox_messages SET status = 'cancelled', updated_at = ?,"
                    " discard_reason = ? WHERE id = ? AND status = 'dead'", (at, reason, number))
            return cur.rowcount == 1

    async def replay_dead_letter(self, dead_letter_id: str, at: str) -> bool:
        """Queue a dead letter again from its first attempt; False if there is no such one."""
        source, number = dead_letter_number(dead_letter_id)
        if number is None:
            return False
        async with self._write() as db:
            if source == "inbox":
                cur = await db.execute(
                    "UPDATE inbox_events SET status = 'pending', attempts = 0,"
                    " next_attempt_at = ?, processed_at = NULL WHERE id = ? AND status = 'dead'",
                    (at, int(number)))
            else:
                cur = await db.execute(
                    "UPDATE outbox_messages SET status = 'pending', attempts = 0, not_before = ?,"
                    " updated_at = ? WHERE id = ? AND status = 'dead'", (at, at, int(number)))
            return cur.rowcount == 1

    # the outbox

    async def next_outbox_due(self) -> str | None:
        # A paused destination's messages are not due: the dispatcher must not wake for them.
        rows = await self._read(
            "SELECT MIN(not_before) AS due FROM outbox_messages WHERE status = 'pending'"
            " AND destination NOT IN (SELECT destination FROM paused_destinations)")
        return rows[0]["due"]

    async def outbox_stats(self) -> dict[str, Any]:
        pending = (await self._read(
            "SELECT COUNT(*) AS n, MIN(not_before) AS oldest FROM outbox_messages"
            " WHERE status = 'pending'"))[0]
        dead = (await self._read(
            "SELECT COUNT(*) AS n FROM outbox_messages WHERE status = 'dead'"))[0]
        now = datetime.now(UTC)
        # Waiting: due now, or tried and failing (a push delayed by design is not waiting
        # until its time comes). Only pending rows, through the pending index.
        due = await self._read(
            "SELECT destination, MIN(created_at) AS oldest FROM outbox_messages"
            " WHERE status = 'pending' AND (not_before <= ? OR attempts > 0)"
            " GROUP BY destination", (utc_iso(now),))
        return {"pending": pending["n"], "dead": dead["n"], "next_due": pending["oldest"],
                "oldest_pending_age_seconds": {
                    row["destination"]: max((now - parse_iso(row["oldest"])).total_seconds(), 0.0)
                    for row in due}}

    async def purge_finished_outbox(self, before: str, batch: int = 5000) -> int:
        return await self._delete_in_batches(
            "DELETE FROM outbox_messages WHERE id IN (SELECT id FROM outbox_messages"
            " WHERE status IN ('sent', 'cancelled') AND updated_at < ? LIMIT ?)", before, batch)

    async def purge_processed_inbox(self, before: str, batch: int = 5000) -> int:
        """Processed events received before `before` (a backend that also keeps their
        delivery keys elsewhere forgets them with them)."""
        return await self._delete_in_batches(
            "DELETE FROM inbox_events WHERE id IN (SELECT id FROM inbox_events"
            " WHERE status = 'processed' AND received_at < ? ORDER BY id LIMIT ?)",
            before, batch)

    async def _delete_in_batches(self, sql: str, before: str, batch: int) -> int:
        """A batch per transaction, so the writer is never held long."""
        deleted = 0
        while True:
            async with self._write() as db:
                cur = await db.execute(sql, (before, batch))
            deleted += cur.rowcount
            if cur.rowcount < batch:
                return deleted
            await asyncio.sleep(0)

    # feed runs

    async def commit_poll(self, connector: str, feed: str, owner: str,
                          events: Sequence[NewInboxEvent], cursor: str,
                          result: Mapping[str, Any], at: str) -> int:
        async with self._write() as db:
            inserted = await self._store_polled(db, events, at) if events else 0
            # A lease lost meanwhile (another process took the feed over) keeps the records,
            # which are unique anyway, but not this run's cursor.
            await db.execute(
                "UPDATE feed_state SET cursor = ?, last_poll_at = ?, last_result = ?,"
                " owner = NULL, lease_until = NULL WHERE connector = ? AND feed = ?"
                " AND owner = ?",
                (cursor, at, to_json({**result, "new_events": inserted}), connector, feed,
                 owner))
            return inserted

    async def _store_polled(self, db: SqlConnection, events: Sequence[NewInboxEvent],
                            at: str) -> int:
        """Polled records into the inbox inside the poll's transaction: how many were new."""
        raise NotImplementedError

    async def claim_feed_run(self, connector: str, feed: str, owner: str, now: str,
                             lease_until: str, started_before: str | None = None
                             ) -> FeedState | None:
        async with self._write() as db:
            await db.execute("INSERT INTO feed_state (connector, feed) VALUES (?,?)"
                             " ON CONFLICT DO NOTHING", (connector, feed))
            cur = await db.execute(
                "UPDATE feed_state SET owner = ?, lease_until = ?, last_started_at = ?"
                " WHERE connector = ? AND feed = ?"
                " AND (owner IS NULL OR owner = ? OR lease_until <= ?)"
                " AND (CAST(? AS TEXT) IS NULL OR last_started_at IS NULL OR last_started_at < ?)",
                (owner, lease_until, now, connector, feed, owner, now, started_before,
                 started_before))
            if cur.rowcount != 1:
                return None
            rows = await db.execute_fetchall(
                "SELECT * FROM feed_state WHERE connector = ? AND feed = ?", (connector, feed))
            return feed_state_from_row(rows[0])

    async def pause_feed(self, connector: str, feed: str, by: str | None, at: str) -> None:
        async with self._write() as db:
            await db.execute("INSERT INTO feed_state (connector, feed) VALUES (?,?)"
                             " ON CONFLICT DO NOTHING", (connector, feed))
            await db.execute("UPDATE feed_state SET paused_by = ?, paused_at = ?"
                             " WHERE connector = ? AND feed = ?",
                             (by, at if by else None, connector, feed))

    async def pause_destination(self, destination: str, by: str | None, at: str) -> None:
        async with self._write() as db:
            if by is None:
                await db.execute("DELETE FROM paused_destinations WHERE destination = ?",
                                 (destination,))
            else:
                await db.execute(
                    "INSERT INTO paused_destinations (destination, paused_by, paused_at)"
                    " VALUES (?,?,?) ON CONFLICT (destination) DO NOTHING",
                    (destination, by, at))

    async def paused_destinations(self) -> dict[str, dict[str, str]]:
        rows = await self._read("SELECT * FROM paused_destinations ORDER BY destination")
        return {r["destination"]: {"paused_by": r["paused_by"], "paused_at": r["paused_at"]}
                for r in rows}

    async def extend_feed_lease(self, connector: str, feed: str, owner: str,
                                lease_until: str) -> bool:
        async with self._write() as db:
            cur = await db.execute(
                "UPDATE feed_state SET lease_until = ? WHERE connector = ? AND feed = ?"
                " AND owner = ?", (lease_until, connector, feed, owner))
            return cur.rowcount == 1

    async def record_poll_error(self, connector: str, feed: str, owner: str, error: str,
                                at: str) -> None:
        async with self._write() as db:
            await db.execute(
                "UPDATE feed_state SET last_error = ?, last_error_at = ?, owner = NULL,"
                " lease_until = NULL WHERE connector = ? AND feed = ? AND owner = ?",
                (error, at, connector, feed, owner))

    async def feed_states(self, connector: str) -> list[FeedState]:
        rows = await self._read("SELECT * FROM feed_state WHERE connector = ? ORDER BY feed",
                                (connector,))
        return [feed_state_from_row(r) for r in rows]

    # shared rate budgets

    async def reserve_rate(self, key: str, want: int, limit: int,
                           window_seconds: float) -> tuple[int, float]:
        async with self._write() as db:
            await self._lock_rate(db, key)
            now = time.time()
            paused = await db.execute_fetchall(
                "SELECT until FROM rate_pauses WHERE key = ? AND until > ?", (key, now))
            if paused:
                return 0, paused[0]["until"] - now
            await db.execute("DELETE FROM rate_reservations WHERE key = ? AND at <= ?",
                             (key, now - window_seconds))
            rows = await db.execute_fetchall(
                "SELECT COALESCE(SUM(count), 0) AS used, MIN(at) AS oldest"
                " FROM rate_reservations WHERE key = ?", (key,))
            granted = max(0, min(want, limit - rows[0]["used"]))
            if granted == 0:
                return 0, max(rows[0]["oldest"] + window_seconds - now, 0.01)
            await db.execute("INSERT INTO rate_reservations (key, at, count) VALUES (?,?,?)",
                             (key, now, granted))
            return granted, 0.0

    async def pause_rate(self, key: str, seconds: float) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT INTO rate_pauses (key, until) VALUES (?,?) ON CONFLICT (key) DO UPDATE"
                " SET until = CASE WHEN rate_pauses.until > excluded.until"
                " THEN rate_pauses.until ELSE excluded.until END", (key, time.time() + seconds))

    # links

    async def links_to_watch(self, connector: str, role: str, now: str,
                             after_fo_id: str | None, limit: int) -> list[PartnerLink]:
        rows = await self._read(
            "SELECT * FROM partner_links WHERE connector = ? AND role = ?"
            " AND (state = 'open' OR (state = 'watching' AND watch_until > ?))"
            " AND fo_id > ? ORDER BY fo_id LIMIT ?",
            (connector, role, now, after_fo_id or "", limit))
        return [link_from_row(r) for r in rows]

    async def finish_watching_links(self, now: str) -> int:
        async with self._write() as db:
            cur = await db.execute(
                "UPDATE partner_links SET state = 'complete', updated_at = ?"
                " WHERE state = 'watching' AND watch_until <= ?", (now, now))
            return cur.rowcount


def dead_letter_number(dead_letter_id: str) -> tuple[str, int | None]:
    """("inbox", 12) for "inbox-12"; a number of None when it is no dead letter id."""
    source, _, number = dead_letter_id.partition("-")
    if not number.isdigit() or source not in ("inbox", "outbox"):
        return source, None
    return source, int(number)


def feed_state_from_row(row: Row) -> FeedState:
    return FeedState(
        connector=row["connector"], feed=row["feed"], cursor=row["cursor"],
        last_poll_at=row["last_poll_at"], last_result=from_json(row["last_result"]) or {},
        last_error=row["last_error"], last_error_at=row["last_error_at"],
        paused_by=row["paused_by"], paused_at=row["paused_at"],
        last_started_at=row["last_started_at"], owner=row["owner"],
        lease_until=row["lease_until"])
