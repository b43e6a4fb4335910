"""What the intake, the inbox worker and the outbox dispatcher share as long-running loops:
sleeping until the next due item or a wake-up, taking work in batches, and stopping their
tasks within a bounded time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TypeVar

from gateway.domain.records import parse_iso

T = TypeVar("T")
IDLE_WAIT_SECONDS = 5.0
STOP_ROUNDS, STOP_WAIT_SECONDS = 5, 1.0
# A batch is taken once the event loop has gone round this many times with nothing joining it.
QUIET_ROUNDS, MAX_GATHER_ROUNDS = 2, 8


async def sleep_until(due: str | None, wake: asyncio.Event) -> None:
    """Until `due` (a stored UTC timestamp) or the event, at most IDLE_WAIT_SECONDS."""
    wait = IDLE_WAIT_SECONDS
    if due is not None:
        wait = min(wait, max((parse_iso(due) - datetime.now(UTC)).total_seconds(), 0.01))
    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
    # lands as the wake-up fires, and stop() would then wait for a loop that never ends.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait):
            await wake.wait()


async def gather_arrivals(count: Callable[[], int], limit: int) -> None:
    """Let work that is already under way join a batch before it is taken: yield to the event
    loop until it goes round QUIET_ROUNDS times without `count()` growing (at most
    MAX_GATHER_ROUNDS rounds, or until `limit`).

    Turns of the loop, not a timer: alone, an item waits two turns. Under load, requests
    already received are read and handled meanwhile, so a batch holds what arrived during the
    previous commit and also what was on its way; each commit has a fixed cost (a WAL sync, a
    trip to the database thread) that the batch shares.
    """
    quiet, size = 0, count()
    for _ in range(MAX_GATHER_ROUNDS):
        if size >= limit:
            return
        await asyncio.sleep(0)
        if count() == size:
            quiet += 1
            if quiet == QUIET_ROUNDS:
                return
        else:
            quiet, size = 0, count()


async def take_batch(queue: asyncio.Queue[T], limit: int) -> list[T]:
    """Wait for one item, let more arrive (gather_arrivals), then take up to `limit`."""
    batch = [await queue.get()]
    await gather_arrivals(lambda: len(batch) + queue.qsize(), limit)
    while not queue.empty() and len(batch) < limit:
        batch.append(queue.get_nowait())
    return batch


async def cancel_all(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel and wait, a few rounds, each bounded: a task may catch one cancellation."""
    tasks = list(tasks)
    for _ in range(STOP_ROUNDS):
        pending = [t for t in tasks if not t.done()]
        if not pending:
            return
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=STOP_WAIT_SECONDS)
