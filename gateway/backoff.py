"""The one retry policy: a schedule of delays with jitter, honouring a partner's Retry-After.

Used by the inbox worker and the outbox dispatcher, so every retried thing
backs off the same way and one `[retry]` section configures them all.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from gateway.config import RetryConfig
from gateway.errors import DEAD, Failure


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int
    schedule_seconds: tuple[float, ...]
    jitter: float

    @classmethod
    def from_config(cls, config: RetryConfig) -> RetryPolicy:
        return cls(config.attempts, config.schedule_seconds, config.jitter)

    def exhausted(self, attempts_made: int) -> bool:
        return attempts_made >= self.attempts

    def next_try(self, failure: Failure, attempts_made: int) -> float | None:
        """Seconds until the next attempt after this failure, or None: a dead letter now."""
        if failure.action == DEAD or self.exhausted(attempts_made):
            return None
        return self.delay(attempts_made, failure.retry_after)

    def delay(self, attempts_made: int, retry_after: float | None = None,
              rng: random.Random | None = None) -> float:
        """Seconds to wait after the n-th failed attempt (n >= 1).

        The schedule's step, spread by +-jitter so a crowd of failures does not retry in step,
        and never shorter than what the partner asked for.
        """
        step = self.schedule_seconds[min(max(attempts_made, 1), len(self.schedule_seconds)) - 1]
        spread = (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        return max(step * spread, retry_after or 0.0)
