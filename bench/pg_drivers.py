"""asyncpg against psycopg 3 (with its pool) on the gateway's kind of PostgreSQL work, to pick
the PostgreSQL backend's driver (issue 11). One throwaway server (durable: fsync on), the
same statements through both drivers, pools of the same size, the same concurrency:

- intake: a batch of 32 webhooks inserted in one transaction, ON CONFLICT DO NOTHING;
- claim: 32 due rows claimed for an owner with a lease, FOR UPDATE SKIP LOCKED;
- change: one transaction of ten small statements (an inbox event applied);
- read: one row by key (the API).

Prints operations/s and the client's CPU per operation (process time), per driver, and the
ratio psycopg / asyncpg. Loopback only; every loop is bounded by a count.

    .venv/bin/python bench/pg_drivers.py [--ops 2000] [--concurrency 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg  # noqa: E402
import psycopg_pool  # noqa: E402

from tests.pg_server import PgServer  # noqa: E402

SCHEMA = """
DROP TABLE IF EXISTS inbox;
CREATE TABLE inbox (id BIGSERIAL PRIMARY KEY, connector TEXT NOT NULL, delivery_key TEXT NOT NULL,
  body BYTEA NOT NULL, status TEXT NOT NULL DEFAULT 'pending', owner TEXT, lease_until TIMESTAMPTZ,
  UNIQUE (connector, delivery_key));
CREATE INDEX inbox_pending ON inbox (id) WHERE status = 'pending';
DROP TABLE IF EXISTS fos;
CREATE TABLE fos (id TEXT PRIMARY KEY, status TEXT NOT NULL, n INTEGER NOT NULL DEFAULT 0);
INSERT INTO fos SELECT 'fo' || g, 'unfulfilled' FROM generate_series(1, 10000) g;
"""
INTAKE = ("INSERT INTO inbox (connector, delivery_key, body) SELECT 'ss', k, b FROM"
          " unnest($1::text[], $2::bytea[]) AS t(k, b) ON CONFLICT DO NOTHING RETURNING id")
CLAIM = ("UPDATE inbox SET owner = $1, lease_until = now() + interval '60 seconds' WHERE id IN"
         " (SELECT id FROM inbox WHERE status = 'pending' AND (lease_until IS NULL OR"
         " lease_until < now()) ORDER BY id LIMIT 32 FOR UPDATE SKIP LOCKED) RETURNING id, body")
READ = "SELECT id, status, n FROM fos WHERE id = $1"
STEP = "UPDATE fos SET n = n + 1, status = $2 WHERE id = $1"


def psy(sql: str) -> str:
    """The same statement with psycopg's placeholders."""
    for n in range(9, 0, -1):
        sql = sql.replace(f"${n}", "%s")
    return sql


class Asyncpg:
    name = "asyncpg"

    async def open(self, dsn: str, size: int) -> None:
        self.pool = await asyncpg.create_pool(dsn, min_size=size, max_size=size)

    async def close(self) -> None:
        await self.pool.close()

    async def intake(self, i: int) -> None:
        keys = [f"d{i}-{j}" for j in range(32)]
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.fetch(INTAKE, keys, [b"{}" * 50] * 32)

    async def claim(self, i: int) -> None:
        async with self.pool.acquire() as conn:
            await conn.fetch(CLAIM, f"owner{i % 8}")

    async def change(self, i: int) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            for j in range(5):
                await conn.fetchrow(READ, f"fo{(i * 5 + j) % 10000 + 1}")
                await conn.execute(STEP, f"fo{(i * 5 + j) % 10000 + 1}", "partially_fulfilled")

    async def read(self, i: int) -> None:
        async with self.pool.acquire() as conn:
            await conn.fetchrow(READ, f"fo{i % 10000 + 1}")


class Psycopg:
    name = "psycopg"

    async def open(self, dsn: str, size: int) -> None:
        self.pool = psycopg_pool.AsyncConnectionPool(dsn, min_size=size, max_size=size,
                                                     open=False)
        await self.pool.open(wait=True)

    async def close(self) -> None:
        await self.pool.close()

    async def intake(self, i: int) -> None:
        keys = [f"d{i}-{j}" for j in range(32)]
        async with self.pool.connection() as conn, conn.transaction():
            await (await conn.execute(psy(INTAKE), (keys, [b"{}" * 50] * 32))).fetchall()

    async def claim(self, i: int) -> None:
        async with self.pool.connection() as conn:
            await (await conn.execute(psy(CLAIM), (f"owner{i % 8}",))).fetchall()

    async def change(self, i: int) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            for j in range(5):
                fo = f"fo{(i * 5 + j) % 10000 + 1}"
                await (await conn.execute(psy(READ), (fo,))).fetchone()
                await conn.execute(psy(STEP), (fo, "partially_fulfilled"))

    async def read(self, i: int) -> None:
        async with self.pool.connection() as conn:
            await (await conn.execute(psy(READ), (f"fo{i % 10000 + 1}",))).fetchone()


async def measure(driver, work: str, ops: int, concurrency: int) -> tuple[float, float]:
    todo = iter(range(ops))
    operation = getattr(driver, work)

    async def worker() -> None:
        for i in todo:
            await operation(i + int(time.time() * 1000) * 10_000)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return ops / wall, cpu / ops * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    with PgServer(durable=True) as pg:
        setup = await asyncpg.connect(pg.dsn)
        await setup.execute(SCHEMA)
        await setup.close()
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        drivers = [Asyncpg(), Psycopg()]
        for driver in drivers:
            await driver.open(pg.dsn, args.concurrency)
        print(f"PostgreSQL on loopback (fsync on), client on core 0; {args.ops} operations per"
              f" run, {args.concurrency} at once, pools of {args.concurrency}; median of"
              f" {args.rounds} rounds, drivers alternating")
        for n in range(args.rounds):
            for driver in drivers if n % 2 == 0 else drivers[::-1]:
                for work in ("intake", "claim", "change", "read"):
                    results.setdefault((driver.name, work), []).append(
                        await measure(driver, work, args.ops, args.concurrency))
        for driver in drivers:
            await driver.close()
    for work in ("intake", "claim", "change", "read"):
        line = [f"  {work:7s}"]
        figures = {}
        for name in ("asyncpg", "psycopg"):
            runs = results[(name, work)]
            rate = statistics.median(r for r, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            figures[name] = (rate, cpu)
            line.append(f"{name} {rate:8,.0f} ops/s {cpu:6.0f} us CPU/op")
        ratio = figures["psycopg"][0] / figures["asyncpg"][0]
        line.append(f"psycopg / asyncpg rate {ratio:.2f}x")
        print("   ".join(line))


if __name__ == "__main__":
    asyncio.run(main())
