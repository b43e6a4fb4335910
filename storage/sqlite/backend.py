"""The SQLite implementation of the storage interface (aiosqlite, WAL, synchronous=FULL).

One writer connection serialised by a lock, so transactions never interleave, and one reader
connection for the API, which WAL lets read while the writer writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Coroutine,
    Iterable,
    Sequence,
)
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from gateway.domain.records import delivery_hash, now_iso
from storage import (
    INBOX,
    OUTBOX,
    InboxEvent,
    NewInboxEvent,
    OutboxMessage,
    StorageUnavailable,
    Transaction,
)
from storage.migrations import numbered_migrations, refuse_newer
from storage.sql.queues import SqlQueues
from storage.sql.tx import (
    SqlTransaction,
    from_json,
    placeholders,
    to_json,
)
from storage.sql.views import SqlViews, snapshot_connection
from storage.sqlite.coordination import SqliteCoordination, _Leases
from storage.sqlite.files import free_bytes, prepare, unavailable

T = TypeVar("T")
CHECKPOINT_SECONDS = 0.5
MIN_FREE_BYTES = 1 << 20  # below this the next burst cannot be stored: not ready
PROBE_SQL = ("INSERT INTO write_probe (id, probed_at) VALUES (1, ?)"
             " ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at")
MAX_CHECKPOINT_DEFER_SECONDS = 10.0


def migrations() -> list[tuple[int, str, str]]:
    return numbered_migrations("storage.sqlite")


class SqliteStorage(SqliteCoordination, SqlQueues, SqlViews):
    """`storage.Storage` on one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._views: aiosqlite.Connection | None = None  # the API's multi-statement reads
        self._views_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self._checkpointer: asyncio.Task[None] | None = None
        # Set by the owner: while it says a write burst is under way, checkpoints wait.
        self.busy: Callable[[], bool] = lambda: False
        self.on_work: Callable[[str], None] = lambda queue: None  # one process: never
        self._leases = {INBOX: _Leases(), OUTBOX: _Leases()}
        self._webhook_keys: set[int] = set()
        self._webhook_keys_loaded = False
        self._lock_file: Any = None

    async def _connect(self) -> aiosqlite.Connection:
        db = await aiosqlite.connect(self.path, isolation_level=None, iter_chunk_size=4096)
        try:
            db.row_factory = aiosqlite.Row
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = FULL")
            await db.execute("PRAGMA foreign_keys = ON")
            await db.execute("PRAGMA busy_timeout = 10000")
        except BaseException:
            await db.close()  # its thread would keep the process alive
            raise
        return db

    async def open(self) -> None:
        if sqlite3.sqlite_version_info < (3, 35):
            raise RuntimeError("SQLite 3.35 or later is needed (RETURNING); this Python has"
                               f" {sqlite3.sqlite_version}")
        try:
            await self._open()
        except BaseException as exc:
            await self.close()
            if isinstance(exc, sqlite3.Error | OSError):
                raise StorageUnavailable(unavailable(self.path, exc)) from None
            raise

    async def _open(self) -> None:
        if self.path != ":memory:":
            await asyncio.to_thread(prepare, self.path)
        self._writer = await self._connect()
        # A write now, so a database that can only be read stops the start, not a webhook.
        version = (await self._writer.execute_fetchall("PRAGMA user_version"))[0][0]
        await self._writer.execute(f"PRAGMA user_version = {int(version)}")
        self._reader = await self._connect()
        self._views = await self._connect()
        # Checkpoints copy the WAL into the database file. Left to SQLite they run inside
        # whichever commit crosses the threshold, and that webhook waits for them; here they
        # run beside the writer, on the reader's connection, and never block a commit.
        await self._writer.execute("PRAGMA wal_autocheckpoint = 0")
        self._checkpointer = asyncio.create_task(self._checkpoint_loop(), name="wal-checkpoint")

    async def _checkpoint_loop(self) -> None:
        deferred = 0.0
        while True:
            await asyncio.sleep(CHECKPOINT_SECONDS)
            if self.busy() and deferred < MAX_CHECKPOINT_DEFER_SECONDS:
                deferred += CHECKPOINT_SECONDS  # a burst is being written: copy afterwards
                continue
            deferred = 0.0
            try:
                await self.reader.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except aiosqlite.Error:
                pass  # busy or locked now: the next round catches up

    async def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
            self._checkpointer = None
            with contextlib.suppress(aiosqlite.Error):
                await self.writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for db in (self._views, self._reader, self._writer):
            if db is not None:
                await db.close()
        self._views = self._reader = self._writer = None
        if self._lock_file is not None:
            self._lock_file.close()  # frees the lock
            self._lock_file = None

    @property
    def writer(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise RuntimeError("storage is not open")
        return self._writer

    @property
    def reader(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise RuntimeError("storage is not open")
        return self._reader

    @property
    def views(self) -> aiosqlite.Connection:
        if self._views is None:
            raise RuntimeError("storage is not open")
        return self._views

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._write_lock:
            db = self.writer
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlTransaction]:
        async with self._write() as db:
            yield SqlTransaction(db)

    async def run(self, change: Callable[[Transaction], Awaitable[T]]) -> T:
        """The whole change in one trip to the database's thread: there, the transaction's
        calls complete at once (a direct connection), so the coroutine is driven to its end
        without the event loop. A change of one event used to make some forty round trips
        to that thread, each waiting for the other to hand over the interpreter."""
        async with self._write_lock:
            return await self.writer._execute(self._run_here, change)

    def _run_here(self, change: Callable[[Transaction], Awaitable[T]]) -> T:
        conn = self.writer._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = run_to_end(change(SqlTransaction(DirectConnection(conn))))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def _in_snapshot(self, read: Callable[[], Awaitable[T]]) -> T:
        """The API's reads of several statements: one read transaction on their own
        connection (see storage.sql.views.snapshot), run whole in one trip to that
        connection's thread, as `run` does a change (an FO's view is eight statements and
        more: one trip each cost it twice the CPU of the statements themselves)."""
        async with self._views_lock:
            return await self.views._execute(self._snapshot_here, read)

    def _snapshot_here(self, read: Callable[[], Awaitable[T]]) -> T:
        conn = self.views._conn
        conn.execute("BEGIN")
        token = snapshot_connection.set(DirectConnection(conn))
        try:
            return run_to_end(read())
        finally:
            snapshot_connection.reset(token)
            conn.execute("COMMIT")

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        db = snapshot_connection.get() or self.reader
        return list(await db.execute_fetchall(sql, params))

    # schema

    async def schema_version(self) -> int:
        rows = await self._read(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'")
        if not rows:
            return 0
        rows = await self._read("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version")
        return rows[0]["v"]

    async def pending_migrations(self) -> int:
        current = await self.schema_version()
        return sum(1 for number, _, _ in migrations() if number > current)

    async def migrate(self) -> int:
        """Apply every numbered migration not yet applied, each in its own transaction."""
        async with self._write() as db:
            await db.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                             "version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                             " applied_at TEXT NOT NULL)")
            rows = await db.execute_fetchall("SELECT version FROM schema_version")
        refuse_newer({row[0] for row in rows}, migrations(), "storage.path")
        applied = 0
        for number, name, sql in migrations():
            async with self._write() as db:
                rows = await db.execute_fetchall(
                    "SELECT 1 FROM schema_version WHERE version = ?", (number,))
                if rows:
                    continue
                for statement in _split_sql(sql):
                    await db.execute(statement)
                await db.execute("INSERT INTO schema_version (version, name, applied_at)"
                                 " VALUES (?,?,?)",
                                 (number, name, datetime.now(UTC).isoformat()))
                applied += 1
        return applied

    async def probe(self) -> str | None:
        if self.path != ":memory:":
            free = await asyncio.to_thread(free_bytes, self.path)
            if free is not None and free < MIN_FREE_BYTES:
                return f"the disk holding {self.path} is full ({free} bytes free)"
        try:
            async with self._write() as db:
                await db.execute(PROBE_SQL, (now_iso(),))
        except (sqlite3.Error, OSError, RuntimeError) as exc:
            return unavailable(self.path, exc)
        return None

    # intake and polling

    async def store_webhooks(self, events: Sequence[NewInboxEvent]) -> list[bool]:
        """De-duplicated against the delivery keys in memory (loaded at open, added at each
        commit): a unique index over webhook keys, random hashes, cost a third of intake.
        The batch is one statement where it fits: in autocommit mode that statement is its
        own durable transaction, one hop to the database thread instead of three."""
        await self._load_webhook_keys()
        new: list[bool] = []
        fresh: list[NewInboxEvent] = []
        keys: set[int] = set()
        for event in events:
            key = delivery_hash(event.connector, event.delivery_key)
            is_new = key not in self._webhook_keys and key not in keys
            new.append(is_new)
            if is_new:
                keys.add(key)
                fresh.append(event)
        if fresh:
            chunks = _inbox_chunks(fresh, now_iso())
            async with self._write_lock:
                if len(chunks) == 1:
                    await self.writer.execute(*chunks[0])
                    chunks = []
            if chunks:
                async with self._write() as db:
                    for chunk in chunks:
                        await db.execute(*chunk)
            self._webhook_keys |= keys
        return new

    async def _load_webhook_keys(self) -> None:
        if self._webhook_keys_loaded:
            return
        async with self.reader.execute(
                "SELECT connector, delivery_key FROM inbox_events WHERE kind = 'webhook'"
                ) as cursor:
            async for row in cursor:
                self._webhook_keys.add(delivery_hash(row["connector"], row["delivery_key"]))
        self._webhook_keys_loaded = True

    async def _store_polled(self, db: Any, events: Sequence[NewInboxEvent], at: str) -> int:
        return sum([(await db.execute(*chunk)).rowcount for chunk in _inbox_chunks(events, at)])

    # the inbox worker

    async def pending_inbox_events(self, limit: int, now: str,
                                   skip: Collection[int] = ()) -> list[InboxEvent]:
        """Due events, oldest first, except those in `skip` (claimed: see _Leases)."""
        rows = list(await self.reader.execute_fetchall(
            "SELECT * FROM inbox_events WHERE status = 'pending' AND next_attempt_at <= ?"
            " AND id NOT IN (SELECT value FROM json_each(?))"  # in hand: not fetched at all
            " ORDER BY next_attempt_at, id LIMIT ?", (now, to_json(list(skip)), limit)))
        return [InboxEvent(id=r["id"], connector=r["connector"], delivery_key=r["delivery_key"],
                           kind=r["kind"], body=bytes(r["body"]), headers=from_json(r["headers"]),
                           attempts=r["attempts"], received_at=r["received_at"])
                for r in rows]

    async def purge_processed_inbox(self, before: str, batch: int = 5000) -> int:
        """Delete processed events received before `before`, a batch per transaction so the
        writer is never held long; their delivery keys are forgotten with them."""
        deleted = 0
        while True:
            async with self._write() as db:
                rows = list(await db.execute_fetchall(
                    "SELECT id, connector, delivery_key, kind FROM inbox_events"
                    " WHERE status = 'processed' AND received_at < ? ORDER BY id LIMIT ?",
                    (before, batch)))
                if rows:
                    ids = [r["id"] for r in rows]
                    await db.execute(
                        f"DELETE FROM inbox_events WHERE id IN ({placeholders(ids)})",
                        ids)
            deleted += len(rows)
            self._webhook_keys -= {delivery_hash(r["connector"], r["delivery_key"])
                                   for r in rows if r["kind"] == "webhook"}
            if len(rows) < batch:
                return deleted
            await asyncio.sleep(0)

    # the outbox dispatcher

    async def due_outbox_messages(self, limit: int, now: str,
                                  skip: Collection[int] = ()) -> list[OutboxMessage]:
        """Due pending messages that are first in their sequence, oldest first.

        A message waits while an earlier one of its sequence (same destination and key) is
        pending, so one FO's events reach a subscriber in the order they happened.
        """
        # The messages in `skip` (already in hand) are left out in SQL, as one JSON array:
        # fetching them to drop them here cost more than the claim itself.
        rows = await self._read(
            "SELECT m.id, m.key, m.destination, m.kind, m.payload, m.fo_id, m.attempts,"
            " m.created_at FROM outbox_messages m WHERE m.status = 'pending' AND m.not_before <= ?"
            " AND m.id NOT IN (SELECT value FROM json_each(?))"
            " AND m.destination NOT IN (SELECT destination FROM paused_destinations)"
            " AND (m.sequence_key IS NULL OR NOT EXISTS (SELECT 1 FROM outbox_messages p"
            " WHERE p.status = 'pending' AND p.destination = m.destination"
            " AND p.sequence_key = m.sequence_key AND p.id < m.id))"
            " ORDER BY m.not_before, m.id LIMIT ?", (now, to_json(list(skip)), limit))
        # By position (the columns above, in OutboxMessage's order): a Row looked up by name
        # costs a string comparison per column, and these are read for every delivery.
        return [OutboxMessage(r[0], r[1], r[2], r[3], r[4].encode(), r[5], r[6], r[7])
                for r in rows]



# Bound parameters a statement may carry: 32766 since SQLite 3.32, 999 before.
_MAX_PARAMS = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999
_INBOX_COLUMNS = 7
_ROWS_PER_STATEMENT = _MAX_PARAMS // _INBOX_COLUMNS


@functools.lru_cache(maxsize=128)
def _insert_inbox_sql(rows: int) -> str:
    return ("INSERT INTO inbox_events (connector, delivery_key, kind, headers, body,"
            " received_at, next_attempt_at) VALUES "
            + ",".join(["(?,?,?,?,?,?,?)"] * rows)
            + " ON CONFLICT (connector, delivery_key) WHERE kind = 'poll' DO NOTHING")


def _inbox_chunks(events: Sequence[NewInboxEvent], at: str) -> list[tuple[str, list[Any]]]:
    chunks = []
    for start in range(0, len(events), _ROWS_PER_STATEMENT):
        part = events[start:start + _ROWS_PER_STATEMENT]
        params: list[Any] = []
        for e in part:
            params += (e.connector, e.delivery_key, e.kind,
                       to_json(dict(e.headers)) if e.headers else "{}", e.body, at, at)
        chunks.append((_insert_inbox_sql(len(part)), params))
    return chunks


class DirectConnection:
    """The calls SqlTransaction makes, on the raw sqlite3 connection, for code already
    running in the database's thread: each completes without suspending."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    async def execute_fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self.conn.execute(sql, params).fetchall()

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> sqlite3.Cursor:
        return self.conn.executemany(sql, rows)


def run_to_end(coroutine: Coroutine[Any, Any, T]) -> T:
    """Drive a coroutine that awaits only what completes at once."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("a storage change awaited something besides its transaction")


def _split_sql(script: str) -> list[str]:
    """Statements of a migration file; ours hold no semicolons inside strings or triggers."""
    lines = [ln for ln in script.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]

