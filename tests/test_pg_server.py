"""The throwaway PostgreSQL server the PostgreSQL backend's tests will run on: it starts from
nothing on a free loopback port, takes connections, and leaves nothing behind when stopped."""

from __future__ import annotations

import asyncpg

from tests.pg_server import PgServer


async def test_a_throwaway_server_starts_answers_and_is_removed() -> None:
    server = PgServer().start()
    root = server.root
    try:
        assert root is not None and (root / "data" / "PG_VERSION").read_text().startswith("15")
        conn = await asyncpg.connect(server.dsn)
        try:
            assert await conn.fetchval("SELECT current_user") == "gateway"
            assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
        finally:
            await conn.close()
    finally:
        server.stop()
    assert not root.exists()
