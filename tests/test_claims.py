"""The one claim loop (gateway/claims.py) on its own, fed by callables standing for storage:
it does not poll while the item due is one it holds, and claims again when that finishes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from gateway.claims import ClaimLoop
from gateway.domain.records import now_iso


@dataclass(frozen=True)
class Item:
    id: int


async def test_work_in_hand_is_not_polled_for_and_its_end_claims_again() -> None:
    pending = [Item(1)]  # due now; once claimed it stays due (pending) until recorded
    claims: list[int] = []
    taken: list[Item] = []

    async def claim(limit: int, lease: float) -> list[Item]:
        claims.append(limit)
        found, pending[:] = pending[:limit], pending[limit:]
        return found

    asked_due: list[int] = []

    async def next_due() -> str | None:
        asked_due.append(1)
        return now_iso()  # the held item: storage sees it pending, and due

    async def take(item: Item) -> None:
        taken.append(item)

    async def extend(ids: object, lease: float) -> set[int]:
        return set()

    async def release(ids: object) -> None:
        return None

    loop = ClaimLoop("test", claim=claim, next_due=next_due, take=take, extend=extend,
                     release=release, capacity=8)
    loop.start()
    try:
        await asyncio.sleep(0.5)
        assert taken == [Item(1)]
        # One claim took it (fewer than it asked for: nothing more was claimable); then it
        # waits (it polled every 10 ms, a claim query each, for as long as anything was in
        # flight; later it claimed once more, finding nothing, before it waited).
        assert len(claims) == 1, claims
        assert not asked_due  # with work in hand, its end wakes the loop: storage not asked
        pending.append(Item(2))
        await loop.finished([1])  # recorded: released, and the loop claims again at once
        await asyncio.sleep(0.05)
        assert taken == [Item(1), Item(2)]
        assert loop.in_hand == {2: Item(2)}
    finally:
        await loop.stop()


async def test_with_nothing_in_hand_an_item_due_is_claimed_without_a_wake() -> None:
    """A due item that could not be claimed while nothing is held (it became due as the
    claim ran) is polled for, as before: no wake-up is coming for it."""
    claims: list[int] = []
    ready = asyncio.Event()

    async def claim(limit: int, lease: float) -> list[Item]:
        claims.append(limit)
        if len(claims) >= 3:
            ready.set()
        return []

    async def next_due() -> str | None:
        return now_iso()

    async def nothing(*args: object) -> None:
        return None

    async def extend(ids: object, lease: float) -> set[int]:
        return set()

    loop = ClaimLoop("test", claim=claim, next_due=next_due, take=nothing, extend=extend,
                     release=nothing, capacity=8)
    loop.start()
    try:
        await asyncio.wait_for(ready.wait(), 1.0)
    finally:
        await loop.stop()
