"""Webhook signing and the retry schedule."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from adapters.webhooks import sign, verify
from services.webhook_delivery.schedule import next_attempt, should_park

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_a_signature_verifies_only_for_the_same_secret_body_and_fresh_timestamp() -> None:
    body = b'{"event": {}}'
    signature = sign("s3cret", 1_790_000_000, body)
    assert signature.startswith("v1=")
    assert verify("s3cret", "1790000000", body, signature, now=1_790_000_100)
    assert not verify("other", "1790000000", body, signature, now=1_790_000_100)
    assert not verify("s3cret", "1790000000", body + b" ", signature, now=1_790_000_100)
    assert not verify("s3cret", "1790000000", body, signature, now=1_790_000_000 + 301)


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
