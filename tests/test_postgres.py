"""The PostgreSQL backend on a throwaway server (tests/pg_server.py): its migrations, applied
once however many processes start together, and the schema's guarantees that several
processes rely on. (The rest of the storage interface is still to come on this backend.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from storage.postgres import PostgresStorage, migrations
from tests.pg_server import PgServer


@pytest.fixture
async def database(pg_server: PgServer) -> AsyncIterator[str]:
    """A fresh database on the module's server: its DSN."""
    name = f"t{id(object())}"
    admin = await asyncpg.connect(pg_server.dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield pg_server.dsn.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_migrations_apply_once_however_many_processes_start_together(database: str
                                                                           ) -> None:
    stores = [PostgresStorage(database, pool_size=2) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        assert await stores[0].schema_version() == 0
        assert await stores[0].pending_migrations() == len(migrations())
        applied = await asyncio.gather(*(s.migrate() for s in stores))
        assert sorted(applied) == [0, 0, 0, len(migrations())]  # one applied, three waited
        assert await stores[1].schema_version() == len(migrations())
        assert await stores[2].pending_migrations() == 0
        assert await stores[3].migrate() == 0
        assert await stores[0].probe() is None
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_a_delivery_is_stored_once_and_lines_read_in_order(database: str) -> None:
    store = PostgresStorage(database)
    await store.open()
    try:
        await store.migrate()
        insert = ("INSERT INTO inbox_events (connector, delivery_key, kind, body, received_at,"
                  " next_attempt_at) VALUES ('wms', $1, 'webhook', $2, 't', 't')"
                  " ON CONFLICT DO NOTHING RETURNING id")
        first = await store.pool.fetchval(insert, "d-1", b"{}")
        again = await store.pool.fetchval(insert, "d-1", b"{}")  # e.g. at another replica
        assert first is not None and again is None
        assert await store.pool.fetchval("SELECT COUNT(*) FROM inbox_events") == 1
        await store.pool.execute(
            "INSERT INTO shipments (id, source, external_id, order_refs, status,"
            " partner_updated_at, recorded_at, updated_at) VALUES"
            " ('sh_1', 'wms', 'S1', '[]', 'shipped', 't', 't', 't')")
        await store.pool.executemany(
            "INSERT INTO shipment_lines (shipment_id, position, sku, quantity) VALUES"
            " ('sh_1', $1, $2, $3)", [(1, "B", 2), (0, "A", 1)])
        lines = await store.pool.fetchval("SELECT lines FROM shipment_records WHERE id = 'sh_1'")
        assert lines.replace(" ", "") == (
            '[{"sku":"A","quantity":1,"partner_line_id":null},'
            '{"sku":"B","quantity":2,"partner_line_id":null}]')
    finally:
        await store.close()


async def test_new_work_committed_by_one_process_wakes_the_others(database: str) -> None:
    from storage import INBOX, OUTBOX, NewInboxEvent, NewOutboxMessage

    first, second = PostgresStorage(database), PostgresStorage(database)
    await first.open()
    await first.migrate()
    await second.open()
    heard: list[str] = []
    second.on_work = heard.append
    try:
        await first.store_webhooks([NewInboxEvent("wms", "d-1", "webhook", b"{}")])
        async with first.transaction() as tx:
            await tx.enqueue_outbox([NewOutboxMessage(
                key="k-1", destination="subscriber:erp", kind="event", payload={},
                not_before="2000-01-01T00:00:00.000000Z")], "2000-01-01T00:00:00.000000Z")
        for _ in range(100):
            if len(heard) >= 2:
                break
            await asyncio.sleep(0.02)
        assert heard == [INBOX, OUTBOX]
        await first.store_webhooks([NewInboxEvent("wms", "d-1", "webhook", b"{}")])
        await asyncio.sleep(0.2)
        assert heard == [INBOX, OUTBOX]  # a repeat stores nothing and announces nothing
    finally:
        await first.close()
        await second.close()


async def test_a_listener_that_drops_listens_again(database: str) -> None:
    from storage import INBOX, NewInboxEvent

    first, second = PostgresStorage(database), PostgresStorage(database)
    await first.open()
    await first.migrate()
    await second.open()
    heard: list[str] = []
    second.on_work = heard.append
    try:
        pid = second._listener.get_server_pid()
        await first.pool.execute("SELECT pg_terminate_backend($1)", pid)
        for _ in range(100):  # reopened, and a look at the queues right away
            if second._listener is not None and not second._listener.is_closed() \
                    and second._listener.get_server_pid() != pid and heard:
                break
            await asyncio.sleep(0.05)
        assert second._listener.get_server_pid() != pid
        heard.clear()
        await first.store_webhooks([NewInboxEvent("wms", "d-2", "webhook", b"{}")])
        for _ in range(100):
            if heard:
                break
            await asyncio.sleep(0.02)
        assert heard == [INBOX]
    finally:
        await first.close()
        await second.close()
