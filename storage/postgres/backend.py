"""PostgreSQL through asyncpg (bench/pg_drivers.py: 1.2-1.7x psycopg 3's rate on this
workload at about half its client CPU per operation) and asyncpg's connection pool.

Migrations: any number of processes may start at once; each takes a session advisory lock
before looking at the schema version, so one applies what is missing (each migration in its
own transaction, with its row in schema_version) while the others wait, then find nothing to do.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from storage.migrations import numbered_migrations

# pg_advisory_lock key for "migrating the gateway's schema" (any constant, the same in every
# process; this one spells "fgw-migr" in ASCII)
MIGRATION_LOCK = 0x6667772D6D696772


def migrations() -> list[tuple[int, str, str]]:
    return numbered_migrations("storage.postgres")


class PostgresStorage:
    def __init__(self, dsn: str, pool_size: int = 10) -> None:
        self.dsn = dsn
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("storage is not open")
        return self._pool

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self.pool_size)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def ping(self) -> bool:
        try:
            await self.pool.fetchval("SELECT 1")
        except Exception:  # noqa: BLE001 - any failure means "not reachable"
            return False
        return True

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
