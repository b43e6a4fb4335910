"""A per-connector request budget, shared by every caller of that connector in this process
and, through storage, by every process calling the same partner.

Three sources of truth are combined: our own count of requests in the last window (so this
process never exceeds the documented budget), what the partner's headers say is left (so a
budget shared with other apps on the same key is respected too), and a shared count in
storage, from which each process reserves a few requests at a time. A reservation is used
within a tenth of the window or dropped, and storage counts reservations over the window plus
that tenth, so all processes together never exceed the budget in any window.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

# (key, want, limit, window seconds) -> (granted, seconds to wait when none)
Reserve = Callable[[str, int, int, float], Awaitable[tuple[int, float]]]
Pause = Callable[[str, float], Awaitable[None]]
RESERVATION_SHARE = 10  # reserve a tenth of the budget at a time (at least one request)
MAX_RESERVATION = 1000


class RateBudget:
    def __init__(self, per_window: int, window_seconds: float = 60.0, *,
                 key: str = "", reserve: Reserve | None = None,
                 pause_shared: Pause | None = None) -> None:
        if per_window <= 0 or window_seconds <= 0:
            raise ValueError("a rate budget needs a positive size and window")
        self.per_window = per_window
        self.window_seconds = window_seconds
        self.key = key
        self._reserve = reserve
        self._pause_shared = pause_shared
        self._reservation = max(1, min(per_window // RESERVATION_SHARE, MAX_RESERVATION))
        self._fresh_for = window_seconds / RESERVATION_SHARE
        self._pool = 0  # reserved and not yet used
        self._pool_until = 0.0
        self._sent: deque[float] = deque()
        # Background requests (polls) sent in the window, and how many the window allows
        # them: the rest of each window stays free for the requests someone waits on.
        self._background: deque[float] = deque()
        self._background_limit = per_window
        self._blocked_until = 0.0
        self._lock = asyncio.Lock()
        self._pausing: set[asyncio.Task[None]] = set()
        self.partner_remaining: int | None = None
        self.longest_wait = 0.0  # of a foreground request (a push) for the budget, seconds
        self.partner_limit: int | None = None
        self._limited: deque[float] = deque()  # when the partner said 429, this process

    def background_share(self, share: float) -> None:
        """Background requests may take at most this share of each window (at least one)."""
        if not 0 < share <= 1:
            raise ValueError("a background share is more than 0 and at most 1")
        self._background_limit = max(1, int(self.per_window * share))

    def _trim(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self.window_seconds:
            self._sent.popleft()
        while self._background and self._background[0] <= now - self.window_seconds:
            self._background.popleft()

    def _background_wait(self, now: float) -> float:
        self._trim(now)
        if len(self._background) < self._background_limit:
            return 0.0
        return self._background[0] + self.window_seconds - now

    async def _shared_wait(self, now: float) -> float:
        """0 when a reserved request is in hand, else how long to wait for one."""
        if self._reserve is None:
            return 0.0
        if self._pool and now < self._pool_until:
            return 0.0
        granted, wait = await self._reserve(self.key, self._reservation, self.per_window,
                                            self.window_seconds + self._fresh_for)
        self._pool, self._pool_until = granted, time.monotonic() + self._fresh_for
        return 0.0 if granted else wait

    async def acquire(self, background: bool = False) -> None:
        """Wait until one more request fits in the budget, then count it. A background
        request (a poll) also waits, outside the queue, while background requests have
        used their share of the window, so it never holds up the others."""
        began = time.monotonic()
        while True:
            share_wait = self._background_wait(time.monotonic()) if background else 0.0
            if share_wait > 0:
                await asyncio.sleep(share_wait)
                continue
            async with self._lock:
                if background and self._background_wait(time.monotonic()) > 0:
                    continue  # another background request took the last of the share
                while True:
                    now = time.monotonic()
                    self._trim(now)
                    wait = self._blocked_until - now
                    if len(self._sent) >= self.per_window:
                        wait = max(wait, self._sent[0] + self.window_seconds - now)
                    if wait <= 0:
                        wait = await self._shared_wait(now)
                    if wait <= 0:
                        if self._reserve is not None:
                            self._pool -= 1
                        sent = time.monotonic()
                        self._sent.append(sent)
                        if background:
                            self._background.append(sent)
                        else:
                            self.longest_wait = max(self.longest_wait, sent - began)
                        return
                    await asyncio.sleep(wait)

    def pause(self, seconds: float) -> None:
        """The partner said stop (429, or nothing left): block every caller that long, in
        every process."""
        self._blocked_until = max(self._blocked_until, time.monotonic() + max(seconds, 0.0))
        if self._pause_shared is not None and seconds > 0:
            task = asyncio.get_running_loop().create_task(self._pause_shared(self.key, seconds))
            self._pausing.add(task)
            task.add_done_callback(self._pausing.discard)

    def limited(self, seconds: float) -> None:
        """The partner answered 429: pause, and count it (the console shows the last hour's)."""
        now = time.monotonic()
        self._limited.append(now)
        while self._limited and self._limited[0] < now - 3600:
            self._limited.popleft()
        self.pause(seconds)

    def limited_last_hour(self) -> int:
        now = time.monotonic()
        return sum(1 for at in self._limited if at >= now - 3600)

    def observe(self, limit: int | None, remaining: int | None, reset_seconds: float | None) -> None:
        self.partner_limit, self.partner_remaining = limit, remaining
        if remaining is not None and remaining <= 0 and reset_seconds is not None:
            self.pause(reset_seconds)

    def state(self) -> dict[str, object]:
        now = time.monotonic()
        self._trim(now)
        return {"budget_per_window": self.per_window, "window_seconds": self.window_seconds,
                "used_in_window": len(self._sent),
                "background_used_in_window": len(self._background),
                "background_limit": self._background_limit, "shared": self._reserve is not None,
                "longest_wait_seconds": round(self.longest_wait, 3),
                "partner_limit": self.partner_limit, "partner_remaining": self.partner_remaining,
                "paused_for_seconds": round(max(self._blocked_until - now, 0.0), 3),
                "rate_limited_last_hour": self.limited_last_hour()}
