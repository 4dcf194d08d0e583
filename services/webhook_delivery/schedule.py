"""When to try a failed delivery again, and when to stop (pure)."""

from __future__ import annotations

import random
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
