"""The shared SQL (storage/sql/) on an asyncpg connection: `?` placeholders become `$1..$n`
(once per statement text, cached), a write's row count is read from its command status, rows
are asyncpg Records, which read by column name like SQLite's."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg


@functools.lru_cache(maxsize=2048)
def dollar_params(sql: str) -> str:
    """`?` outside string literals as `$1`, `$2`, ... in order."""
    out, n, quoted = [], 0, False
    for ch in sql:
        if ch == "'":
            quoted = not quoted
        if ch == "?" and not quoted:
            n += 1
            out.append(f"${n}")
        else:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True)
class Result:
    rowcount: int


def _count(status: str) -> int:
    """'UPDATE 3' -> 3, 'INSERT 0 2' -> 2; 0 when the status carries no count."""
    last = status.rpartition(" ")[2]
    return int(last) if last.isdigit() else 0


class PgConnection:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        return Result(_count(await self.conn.execute(dollar_params(sql), *params)))

    async def execute_fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return await self.conn.fetch(dollar_params(sql), *params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if rows:
            await self.conn.executemany(dollar_params(sql), rows)
