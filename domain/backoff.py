"""When to try a failed delivery again, and when to stop (pure): the webhooks' schedule,
shared by the GP rest-hooks (``services/gp_notify/retries.py``)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


def next_attempt(
    now: datetime, attempts: int, base: float, cap: float, jitter: random.Random | None = None
) -> datetime:
    """Exponential backoff: base·2^(attempts-1), capped, ±10 % jitter so receivers coming
    back from maintenance are not hit by every delivery in the same second."""
    delay = min(cap, base * 2 ** max(0, attempts - 1))
    spread = (jitter or random).uniform(0.9, 1.1)
    return now + timedelta(seconds=delay * spread)


def should_park(now: datetime, created_at: datetime, max_age: float) -> bool:
    return (now - created_at).total_seconds() >= max_age


@dataclass(frozen=True)
class Backoff:
    """A retry schedule: ``base_seconds`` doubling up to ``cap_seconds``, given up
    ``give_up_after_seconds`` after the first failure."""

    base_seconds: float
    cap_seconds: float
    give_up_after_seconds: float

    def next_attempt(self, now: datetime, attempts: int) -> datetime:
        return next_attempt(now, attempts, self.base_seconds, self.cap_seconds)

    def gives_up(self, now: datetime, failing_since: datetime) -> bool:
        return should_park(now, failing_since, self.give_up_after_seconds)
