"""The webhook retry schedule (signing: test_webhook_signing.py)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from services.webhook_delivery.schedule import next_attempt, should_park

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_backoff_doubles_from_the_base_and_stops_at_the_cap() -> None:
    steady = random.Random(0)  # noqa: S311 - jitter, not secrets
    delays = [
        (next_attempt(NOW, n, base=30, cap=3600, jitter=steady) - NOW).total_seconds()
        for n in range(1, 10)
    ]
    for attempt, delay in enumerate(delays, start=1):
        expected = min(3600, 30 * 2 ** (attempt - 1))
        assert expected * 0.9 <= delay <= expected * 1.1


def test_retries_last_at_least_a_day_before_parking() -> None:
    created = NOW - timedelta(hours=23, minutes=59)
    assert not should_park(NOW, created, max_age=86400)
    assert should_park(NOW + timedelta(minutes=1), created, max_age=86400)
