"""What the inbox worker and the outbox dispatcher share as long-running loops: sleeping until
the next due item or a wake-up, taking finished work in batches, and stopping their tasks
within a bounded time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TypeVar

from gateway.records import parse_iso

T = TypeVar("T")
IDLE_WAIT_SECONDS = 5.0
STOP_ROUNDS, STOP_WAIT_SECONDS = 5, 1.0


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


async def take_batch(queue: asyncio.Queue[T], limit: int) -> list[T]:
    """Wait for one item, then take whatever else is already waiting, up to `limit`."""
    batch = [await queue.get()]
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
