"""What the SQLite backend does to coordinate work between processes: claims and their leases,
feed runs, a partner's shared request budget, links to watch, and the lock that lets one
serving process use a file."""

from __future__ import annotations

import asyncio
import fcntl
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from gateway.domain.records import now_iso
from storage import INBOX, OUTBOX, InboxEvent, OutboxMessage, StorageInUse, StorageUnavailable
from storage.sqlite.files import unavailable

T = TypeVar("T")


class _Leases:
    """Claims of one queue, held in memory: one process serves a SQLite file (join), so a
    claim costs no write, and after a crash every unfinished item is simply due again."""

    def __init__(self) -> None:
        self.held: dict[int, tuple[str, float]] = {}  # id -> (owner, lease end, monotonic)
        self._reads = 0
        self._released_during_read: set[int] = set()

    def unavailable(self) -> list[int]:
        now = time.monotonic()
        for item_id in [i for i, (_, until) in self.held.items() if until <= now]:
            del self.held[item_id]  # expired: anyone may claim it again
        return list(self.held)

    def begin_read(self) -> None:
        self._reads += 1

    def end_read(self, found: list[T], key: Callable[[T], int]) -> list[T]:
        """What a claim's read found, less what was released while it ran (a read that began
        before an outcome's commit may still have seen the item due)."""
        self._reads -= 1
        found = [item for item in found if key(item) not in self._released_during_read]
        if not self._reads:
            self._released_during_read.clear()
        return found

    def take(self, owner: str, ids: Iterable[int], lease_seconds: float) -> None:
        until = time.monotonic() + lease_seconds
        for item_id in ids:
            self.held[item_id] = (owner, until)

    def extend(self, owner: str, ids: Iterable[int], lease_seconds: float) -> set[int]:
        until = time.monotonic() + lease_seconds
        kept = {i for i in ids if self.held.get(i, ("", 0.0))[0] == owner}
        for item_id in kept:
            self.held[item_id] = (owner, until)
        return kept

    def release(self, owner: str, ids: Iterable[int]) -> None:
        for item_id in ids:
            if self.held.get(item_id, ("", 0.0))[0] == owner:
                del self.held[item_id]
                if self._reads:
                    self._released_during_read.add(item_id)


class SqliteCoordination:
    """Mixed into SqliteStorage, which provides the connections and the write lock."""

    path: str
    _lock_file: Any
    _leases: dict[str, _Leases]

    def _write(self) -> Any:
        raise NotImplementedError

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        raise NotImplementedError

    async def pending_inbox_events(self, limit: int, now: str,
                                   skip: Collection[int] = ()) -> list[InboxEvent]:
        raise NotImplementedError

    async def due_outbox_messages(self, limit: int, now: str,
                                  skip: Collection[int] = ()) -> list[OutboxMessage]:
        raise NotImplementedError

    async def join(self, owner: str) -> None:
        """One serving process per SQLite file: webhook de-duplication and claims live in
        its memory. A second one is refused (fcntl lock beside the file, freed at exit)."""
        if self.path == ":memory:" or self._lock_file is not None:
            return
        try:
            self._lock_file = await asyncio.to_thread(_lock_exclusively, self.path, owner)
        except OSError as exc:
            raise StorageUnavailable(unavailable(self.path + ".lock", exc)) from None
        # Holding the file's lock, this is its one serving process: a feed run another owner
        # still holds was left by a process that died. Let it go now rather than wait out
        # its lease (minutes). A one-off `poll` running meanwhile may then overlap a
        # scheduled run once: what they fetch is de-duplicated.
        async with self._write() as db:
            if await db.execute_fetchall(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'feed_state'"):
                await db.execute("UPDATE feed_state SET owner = NULL, lease_until = NULL"
                                 " WHERE owner IS NOT NULL AND owner != ?", (owner,))

    # claims

    async def _claim(self, queue: str, owner: str, limit: int, lease_seconds: float,
                     read: Callable[[int, str, Collection[int]], Awaitable[list[T]]]
                     ) -> list[T]:
        leases = self._leases[queue]
        leases.begin_read()
        try:
            found = await read(limit, now_iso(), leases.unavailable())
        except BaseException:
            leases.end_read([], lambda item: 0)
            raise
        found = leases.end_read(found, lambda item: item.id)
        leases.take(owner, [item.id for item in found], lease_seconds)
        return found

    async def claim_inbox_events(self, owner: str, limit: int,
                                 lease_seconds: float) -> list[InboxEvent]:
        return await self._claim(INBOX, owner, limit, lease_seconds, self.pending_inbox_events)

    async def claim_outbox_messages(self, owner: str, limit: int,
                                    lease_seconds: float) -> list[OutboxMessage]:
        return await self._claim(OUTBOX, owner, limit, lease_seconds, self.due_outbox_messages)

    async def extend_claims(self, owner: str, queue: str, ids: Collection[int],
                            lease_seconds: float) -> set[int]:
        return self._leases[queue].extend(owner, ids, lease_seconds)

    async def release_claims(self, owner: str, queue: str, ids: Collection[int]) -> None:
        self._leases[queue].release(owner, ids)

def _lock_exclusively(path: str, owner: str) -> Any:
    handle = Path(path + ".lock").open("a+")  # noqa: SIM115 - held open while serving
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StorageInUse(
            f"{path} is served by {holder}; one gateway process serves a SQLite file (use"
            " the PostgreSQL backend for several)") from None
    handle.seek(0)
    handle.truncate()
    handle.write(owner)
    handle.flush()
    return handle
