"""A per-connector request budget shared by every caller of that connector.

Two sources of truth are combined: our own count of requests in the last window (so we never
exceed the documented budget), and what the partner's headers say is left (so a budget shared
with other apps on the same key is respected too).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque


class RateBudget:
    def __init__(self, per_window: int, window_seconds: float = 60.0) -> None:
        if per_window <= 0 or window_seconds <= 0:
            raise ValueError("a rate budget needs a positive size and window")
        self.per_window = per_window
        self.window_seconds = window_seconds
        self._sent: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = asyncio.Lock()
        self.partner_remaining: int | None = None
        self.partner_limit: int | None = None

    def _trim(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self.window_seconds:
            self._sent.popleft()

    async def acquire(self) -> None:
        """Wait until one more request fits in the budget, then count it."""
        async with self._lock:
            while True:
                now = time.monotonic()
                self._trim(now)
                wait = self._blocked_until - now
                if len(self._sent) >= self.per_window:
                    wait = max(wait, self._sent[0] + self.window_seconds - now)
                if wait <= 0:
                    self._sent.append(now)
                    return
                await asyncio.sleep(wait)

    def pause(self, seconds: float) -> None:
        """The partner said stop (429, or nothing left): block every caller that long."""
        self._blocked_until = max(self._blocked_until, time.monotonic() + max(seconds, 0.0))

    def observe(self, limit: int | None, remaining: int | None, reset_seconds: float | None) -> None:
        self.partner_limit, self.partner_remaining = limit, remaining
        if remaining is not None and remaining <= 0 and reset_seconds is not None:
            self.pause(reset_seconds)

    def state(self) -> dict[str, object]:
        now = time.monotonic()
        self._trim(now)
        return {"budget_per_window": self.per_window, "window_seconds": self.window_seconds,
                "used_in_window": len(self._sent),
                "partner_limit": self.partner_limit, "partner_remaining": self.partner_remaining,
                "paused_for_seconds": round(max(self._blocked_until - now, 0.0), 3)}
