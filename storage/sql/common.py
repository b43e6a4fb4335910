"""What the SQL both backends run shares: the connection it needs, JSON columns, `IN`
placeholders, and cursors for keyed pages (a page's last key as URL-safe text, and back)."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import orjson

from storage import InvalidCursor

Row = Mapping[str, Any]


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...


class SqlConnection(Protocol):
    """What the shared SQL needs of a backend's connection: `?` placeholders, rows that
    read by column name, the row count of a write."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    async def execute_fetchall(self, sql: str, params: Sequence[Any] = ()) -> Iterable[Row]: ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any: ...


def to_json(value: Any) -> str:
    return orjson.dumps(value).decode()


def from_json(text: str | bytes | None) -> Any:
    return None if text is None else orjson.loads(text)

def placeholders(values: Sequence[Any]) -> str:
    """For `IN (...)`: one `?` per value; `NULL` (matching nothing) for none, since
    PostgreSQL has no empty `IN ()`."""
    return ",".join("?" * len(values)) or "NULL"


def encode_cursor(*key: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def decode_cursor(cursor: str, *kinds: type) -> list[Any]:
    """A cursor this API handed out for this list: its parts of the given kinds (text, or a
    64-bit whole number), else InvalidCursor (one list's cursor given to another included)."""
    try:
        key = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        raise InvalidCursor("cursor: not a cursor this API returned") from None
    if not isinstance(key, list) or len(key) != len(kinds) or not all(
            type(part) is kind and (kind is not int or -2**63 <= part < 2**63)
            for part, kind in zip(key, kinds, strict=True)):
        raise InvalidCursor("cursor: not a cursor this list returned")
    return key
