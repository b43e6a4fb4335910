"""The one claim loop, serving the inbox worker and the outbox dispatcher alike.

It claims due work from storage for this process with a lease, up to its capacity, hands each
item on, keeps the leases of what it holds extended while the work lasts, and releases what
has been recorded. When nothing is due it sleeps until the next item is (or a wake-up). A
process that dies holds nothing for long: its leases run out and any process claims again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from typing import Generic, Protocol, TypeVar

from gateway import logs
from gateway.loops import cancel_all, sleep_until

log = logs.get("gateway.claims")
LEASE_SECONDS = 60.0  # extended every third of it while the work is in hand


class Claimable(Protocol):
    @property
    def id(self) -> int: ...


T = TypeVar("T", bound=Claimable)


class ClaimLoop(Generic[T]):
    def __init__(self, name: str, *,
                 claim: Callable[[int, float], Awaitable[list[T]]],
                 next_due: Callable[[], Awaitable[str | None]],
                 take: Callable[[T], Awaitable[None]],
                 extend: Callable[[Collection[int], float], Awaitable[set[int]]],
                 release: Callable[[Collection[int]], Awaitable[None]],
                 capacity: int, lease_seconds: float = LEASE_SECONDS,
                 pause: Callable[[], Awaitable[None]] | None = None) -> None:
        self.name = name
        self._claim, self._next_due, self._take = claim, next_due, take
        self._extend, self._release, self._pause = extend, release, pause
        self.capacity = capacity
        self.lease_seconds = lease_seconds
        self.in_hand: dict[int, T] = {}
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(), name=f"{self.name}-claim"),
                       asyncio.create_task(self._keep_leases(), name=f"{self.name}-leases")]

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        self._tasks = []

    @property
    def running(self) -> bool:
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    async def finished(self, ids: Collection[int]) -> None:
        """Their outcomes are recorded: release them, and claim more."""
        for item_id in ids:
            self.in_hand.pop(item_id, None)
        await self._release(ids)
        self._room.set()
        self.wake()

    async def _run(self) -> None:
        while True:
            if self._pause is not None:
                await self._pause()
            self._wake.clear()
            room = self.capacity - len(self.in_hand)
            if room <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            items = await self._claim(room, self.lease_seconds)
            for item in items:
                self.in_hand[item.id] = item
                await self._take(item)
            if len(items) < room:
                await sleep_until(await self._claim_again_at(), self._wake)

    async def _claim_again_at(self) -> str | None:
        """After a claim that found fewer than it asked for, nothing else was claimable, and
        what becomes so wakes this loop (new work, or something finished): claiming again at
        once found nothing nearly every time (at 500 webhooks/s a third of the claim queries,
        each a trip to the database). With work in hand, the next item due is that work
        itself, or one waiting behind it in its sequence: its end wakes the loop, so neither
        storage is asked nor the item polled for (it was: a claim every 10 ms while anything
        was in flight, 15 % of the gateway's CPU in a slow pipeline). With nothing in hand,
        the next retry or delayed message is asked for."""
        if self.in_hand:
            return None  # until woken, at most the idle wait
        return await self._next_due()

    async def _keep_leases(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            held = set(self.in_hand)
            if not held:
                continue
            kept = await self._extend(held, self.lease_seconds)
            lost = held - kept - (held - set(self.in_hand))  # not those finished meanwhile
            if lost:
                # Held too long (a stalled partner call): another process may take them over.
                # The work goes on; every handler is safe to run twice.
                log.warning("claims.lease_lost", queue=self.name, ids=sorted(lost)[:20],
                            count=len(lost))
