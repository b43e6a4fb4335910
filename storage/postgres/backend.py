"""The PostgreSQL implementation of the storage interface, for any number of gateway processes
on one database: webhooks de-duplicated by a unique delivery key, inbox events and outbox
messages claimed with FOR UPDATE SKIP LOCKED and a lease on the row, the ledger's
transactions and the API's reads in the SQL both backends share (storage/sql/).

PostgreSQL through asyncpg (bench/pg_drivers.py: 1.2-1.7x psycopg 3's rate on this
workload at about half its client CPU per operation) and asyncpg's connection pool.

Migrations: any number of processes may start at once; each takes a session advisory lock
before looking at the schema version, so one applies what is missing (each migration in its
own transaction, with its row in schema_version) while the others wait, then find nothing to do.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Sequence,
)
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg

from gateway.domain.records import Shipment, now_iso, utc_iso
from storage import (
    INBOX,
    OUTBOX,
    InboxEvent,
    NewInboxEvent,
    NewOutboxMessage,
    OutboxMessage,
    StorageUnavailable,
    Transaction,
)
from storage.migrations import numbered_migrations, refuse_newer
from storage.models import InboundShipmentView
from storage.postgres.adapter import PgConnection, dollar_params
from storage.sql.queues import SqlQueues
from storage.sql.tx import SqlTransaction, from_json, to_json
from storage.sql.views import SqlViews, snapshot_connection

T = TypeVar("T")
CONNECT_TIMEOUT_SECONDS = 10.0  # a server that does not answer stops the start this soon

# pg_advisory_lock key for "migrating the gateway's schema" (any constant, the same in every
# process; this one spells "fgw-migr" in ASCII)
MIGRATION_LOCK = 0x6667772D6D696772


def migrations() -> list[tuple[int, str, str]]:
    return numbered_migrations("storage.postgres")


class PgTransaction(SqlTransaction):
    """Transactions of several processes at once: FO numbers from a sequence, never MAX + 1;
    FO rows locked while they are reconciled; one shipment recorded by one at a time."""

    NEXT_FO_SEQ = "SELECT nextval('fulfillment_order_seq') AS seq"

    async def enqueue_outbox(self, messages: Sequence[NewOutboxMessage], at: str) -> int:
        inserted = await super().enqueue_outbox(messages, at)
        if inserted:
            await _notify(self.db, OUTBOX)
        return inserted

    async def lock_fulfillment_orders(self, fo_ids: Iterable[str]) -> None:
        ids = sorted(set(fo_ids))  # in one order everywhere, so two lockers cannot deadlock
        if ids:
            await self.db.execute_fetchall(
                "SELECT id FROM fulfillment_orders WHERE id = ANY(?::text[]) ORDER BY id"
                # not FOR UPDATE: that would wait for the key-share locks which rows
                # referencing the FO (a shipment's match being written) hold, and deadlock
                " FOR NO KEY UPDATE", (ids,))

    async def get_shipment(self, source: str, external_id: str) -> Shipment | None:
        # The same shipment from two processes at once (a webhook here, a poll there): the
        # second waits for the first's commit, then sees its version.
        await self.db.execute("SELECT pg_advisory_xact_lock(hashtext(?))",
                              (f"shipment:{source}:{external_id}",))
        return await super().get_shipment(source, external_id)

    async def get_inbound_shipment(self, connector: str,
                                   external_id: str) -> InboundShipmentView | None:
        # Its receipts are worked out from what is stored: one process at a time, the
        # second seeing the first's commit.
        await self.db.execute("SELECT pg_advisory_xact_lock(hashtext(?))",
                              (f"inbound:{connector}:{external_id}",))
        return await super().get_inbound_shipment(connector, external_id)


class PostgresStorage(SqlQueues, SqlViews):
    """`storage.Storage` on a PostgreSQL database shared by any number of processes."""

    webhook_keys_indexed = True  # UNIQUE (connector, kind, delivery_key): de-duplication

    def __init__(self, dsn: str, pool_size: int = 10, dsn_source: str = "the DSN") -> None:
        self.dsn = dsn
        self.dsn_key = dsn_source
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self.busy: Callable[[], bool] = lambda: False
        self.on_work: Callable[[str], None] = lambda queue: None
        self._listener: asyncpg.Connection | None = None
        self._relisten: asyncio.Future[None] | None = None
        self._closing = False

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("storage is not open")
        return self._pool

    async def open(self) -> None:
        self._closing = False
        try:
            self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self.pool_size,
                                                   timeout=CONNECT_TIMEOUT_SECONDS)
            await self._listen()
        except (OSError, TimeoutError, ValueError, asyncpg.PostgresError,
                asyncpg.InterfaceError) as exc:
            await self.close()
            raise StorageUnavailable(f"{self.dsn_key}: cannot connect to PostgreSQL"
                                     f" ({self._without_secrets(exc)}); check the server is"
                                     " up and the DSN's host, port, user, password and"
                                     " database") from None

    def _without_secrets(self, exc: BaseException) -> str:
        text = str(exc) or type(exc).__name__
        password = urlsplit(self.dsn).password if "://" in self.dsn else None
        for secret in filter(None, (self.dsn, password)):
            text = text.replace(secret, "[redacted]")
        return text.splitlines()[0] if text else type(exc).__name__

    async def _listen(self) -> None:
        """New work committed by any process is announced on one channel (NOTIFY is sent at
        commit). A listening connection that drops (a database restart, a terminated
        backend) is opened again; meanwhile the claim loops' slow re-check is the backstop."""
        self._listener = await asyncpg.connect(self.dsn, timeout=CONNECT_TIMEOUT_SECONDS)
        await self._listener.add_listener(WORK_CHANNEL, self._notified)
        self._listener.add_termination_listener(self._listener_lost)

    def _notified(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        self.on_work(payload)

    def _listener_lost(self, conn: Any) -> None:
        if not self._closing:
            self._relisten = asyncio.ensure_future(self._listen_again())

    async def _listen_again(self) -> None:
        delay = 0.1
        while not self._closing:
            try:
                await self._listen()
                self.on_work(INBOX)  # what was announced meanwhile was missed: look now
                self.on_work(OUTBOX)
                return
            except (OSError, asyncpg.PostgresError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def close(self) -> None:
        self._closing = True
        if self._relisten is not None and not self._relisten.done():
            self._relisten.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relisten
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def probe(self) -> str | None:
        try:
            await self.pool.execute(
                "INSERT INTO write_probe (id, probed_at) VALUES (1, $1)"
                " ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at", now_iso())
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            return f"PostgreSQL: {self._without_secrets(exc)}"
        return None

    async def schema_version(self) -> int:
        exists = await self.pool.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
        if not exists:
            return 0
        return await self.pool.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version")

    async def pending_migrations(self) -> int:
        current = await self.schema_version()
        return sum(1 for number, _, _ in migrations() if number > current)

    async def migrate(self) -> int:
        """Apply every migration not yet applied; one process at a time."""
        applied = 0
        async with self.pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
            try:
                await conn.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                                   "version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                                   " applied_at TEXT NOT NULL)")
                done = {r["version"] for r in await conn.fetch(
                    "SELECT version FROM schema_version")}
                refuse_newer(done, migrations(), self.dsn_key)
                for number, name, sql in migrations():
                    if number in done:
                        continue
                    async with conn.transaction():
                        await conn.execute(sql)  # a script: no parameters, several statements
                        await conn.execute(
                            "INSERT INTO schema_version (version, name, applied_at)"
                            " VALUES ($1, $2, $3)",
                            number, name, datetime.now(UTC).isoformat())
                    applied += 1
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
        return applied

    # transactions and reads

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[PgConnection]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield PgConnection(conn)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlTransaction]:
        async with self._write() as db:
            yield PgTransaction(db)

    async def run(self, change: Callable[[Transaction], Awaitable[T]]) -> T:
        async with self._write() as db:
            return await change(PgTransaction(db))

    @asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[PgConnection]:
        async with self.pool.acquire() as conn, conn.transaction(
                isolation="repeatable_read", readonly=True):
            yield PgConnection(conn)

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        db = snapshot_connection.get()
        if db is not None:
            return list(await db.execute_fetchall(sql, params))
        return await self.pool.fetch(dollar_params(sql), *params)

    async def _lock_rate(self, db: Any, key: str) -> None:
        await db.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (key,))

    # intake and polling

    async def join(self, owner: str) -> None:
        """Any number of processes share one database: nothing to hold."""

    async def store_webhooks(self, events: Sequence[NewInboxEvent]) -> list[bool]:
        """One statement, its own durable transaction; a delivery stored before, by this
        process or another, is left out by the unique delivery key (and counted not new), as
        is a repeat in the batch."""
        if not events:
            return []
        stored = await _insert_inbox(self.pool, events, now_iso())
        new, seen = [], set()
        for e in events:
            key = (e.connector, e.kind, e.delivery_key)
            new.append(key in stored and key not in seen)
            seen.add(key)
        return new

    async def _store_polled(self, db: Any, events: Sequence[NewInboxEvent], at: str) -> int:
        return len(await _insert_inbox(db.conn, events, at))

    # claims: FOR UPDATE SKIP LOCKED, an owner and a lease on the row

    async def claim_inbox_events(self, owner: str, limit: int,
                                 lease_seconds: float) -> list[InboxEvent]:
        now = datetime.now(UTC)
        rows = await self.pool.fetch(
            "UPDATE inbox_events SET owner = $1, lease_until = $2 WHERE id IN ("
            " SELECT id FROM inbox_events WHERE status = 'pending' AND next_attempt_at <= $3"
            " AND (lease_until IS NULL OR lease_until <= $3)"
            " ORDER BY next_attempt_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING *",
            owner, utc_iso(now + timedelta(seconds=lease_seconds)), utc_iso(now), limit)
        return [_inbox_event(r) for r in sorted(rows, key=lambda r: (r["next_attempt_at"],
                                                                      r["id"]))]

    async def claim_outbox_messages(self, owner: str, limit: int,
                                    lease_seconds: float) -> list[OutboxMessage]:
        """The first due message of each sequence: a later one waits while an earlier one is
        pending, whoever holds it, so one FO's messages to a destination go one at a time,
        in order, across processes."""
        now = datetime.now(UTC)
        rows = await self.pool.fetch(
            "UPDATE outbox_messages SET owner = $1, lease_until = $2 WHERE id IN ("
            f" SELECT m.id FROM outbox_messages m WHERE {_DUE_OUTBOX}"
            " AND (m.lease_until IS NULL OR m.lease_until <= $3)"
            " ORDER BY m.not_before, m.id LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING *",
            owner, utc_iso(now + timedelta(seconds=lease_seconds)), utc_iso(now), limit)
        return [_outbox_message(r) for r in sorted(rows, key=lambda r: (r["not_before"],
                                                                         r["id"]))]

    async def extend_claims(self, owner: str, queue: str, ids: Collection[int],
                            lease_seconds: float) -> set[int]:
        until = utc_iso(datetime.now(UTC) + timedelta(seconds=lease_seconds))
        rows = await self.pool.fetch(
            f"UPDATE {_QUEUE_TABLES[queue]} SET lease_until = $1"
            " WHERE id = ANY($2::bigint[]) AND owner = $3 RETURNING id", until, list(ids), owner)
        return {r["id"] for r in rows}

    async def release_claims(self, owner: str, queue: str, ids: Collection[int]) -> None:
        if ids:
            await self.pool.execute(
                f"UPDATE {_QUEUE_TABLES[queue]} SET owner = NULL, lease_until = NULL"
                " WHERE id = ANY($1::bigint[]) AND owner = $2", list(ids), owner)

    async def pending_inbox_events(self, limit: int, now: str,
                                   skip: Collection[int] = ()) -> list[InboxEvent]:
        rows = await self.pool.fetch(
            "SELECT * FROM inbox_events WHERE status = 'pending' AND next_attempt_at <= $1"
            " AND NOT (id = ANY($2::bigint[])) ORDER BY next_attempt_at, id LIMIT $3",
            now, list(skip), limit)
        return [_inbox_event(r) for r in rows]

    async def due_outbox_messages(self, limit: int, now: str,
                                  skip: Collection[int] = ()) -> list[OutboxMessage]:
        rows = await self.pool.fetch(
            f"SELECT m.* FROM outbox_messages m WHERE {_DUE_OUTBOX}"
            " AND NOT (m.id = ANY($1::bigint[])) ORDER BY m.not_before, m.id LIMIT $2",
            list(skip), limit, now)
        return [_outbox_message(r) for r in rows]


_QUEUE_TABLES = {INBOX: "inbox_events", OUTBOX: "outbox_messages"}
WORK_CHANNEL = "gateway_work"


async def _notify(db: PgConnection, queue: str) -> None:
    """Sent when the transaction commits; repeats within one transaction are sent once."""
    await db.execute("SELECT pg_notify(?, ?)", (WORK_CHANNEL, queue))

# due, pending, and first of its sequence; `$3` is now (the claim's and the listing's)
_DUE_OUTBOX = (
    "m.status = 'pending' AND m.not_before <= $3"
    " AND m.destination NOT IN (SELECT destination FROM paused_destinations)"
    " AND (m.sequence_key IS NULL OR NOT EXISTS (SELECT 1 FROM outbox_messages p"
    " WHERE p.status = 'pending' AND p.destination = m.destination"
    " AND p.sequence_key = m.sequence_key AND p.id < m.id))")


async def _insert_inbox(conn: Any, events: Sequence[NewInboxEvent],
                        at: str) -> set[tuple[str, str, str]]:
    """One statement, announcing the new work (NOTIFY, sent at commit) only when it stored
    some: on its own (intake) it is its own transaction, one round trip instead of four."""
    rows = await conn.fetch(
        "WITH stored AS (INSERT INTO inbox_events (connector, delivery_key, kind, headers,"
        " body, received_at, next_attempt_at) SELECT c, d, k, h, b, $6, $6 FROM"
        " unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[])"
        " AS t(c, d, k, h, b) ON CONFLICT (connector, kind, delivery_key) DO NOTHING"
        " RETURNING connector, kind, delivery_key)"
        " SELECT s.connector, s.kind, s.delivery_key FROM stored s CROSS JOIN"
        " (SELECT pg_notify($7, $8) WHERE EXISTS (SELECT 1 FROM stored)) AS announced",
        [e.connector for e in events], [e.delivery_key for e in events],
        [e.kind for e in events],
        [to_json(dict(e.headers)) if e.headers else "{}" for e in events],
        [e.body for e in events], at, WORK_CHANNEL, INBOX)
    return {(r["connector"], r["kind"], r["delivery_key"]) for r in rows}


def _inbox_event(r: Any) -> InboxEvent:
    return InboxEvent(id=r["id"], connector=r["connector"], delivery_key=r["delivery_key"],
                      kind=r["kind"], body=bytes(r["body"]), headers=from_json(r["headers"]),
                      attempts=r["attempts"], received_at=r["received_at"])


def _outbox_message(r: Any) -> OutboxMessage:
    return OutboxMessage(id=r["id"], key=r["key"], destination=r["destination"],
                         kind=r["kind"], payload_json=r["payload"].encode(), fo_id=r["fo_id"],
                         attempts=r["attempts"], created_at=r["created_at"])
