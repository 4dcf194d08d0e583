"""When to try a failed delivery again, and when to stop: the pure rules live in
``domain/backoff.py`` (the GP rest-hooks use them too)."""

from __future__ import annotations

from domain.backoff import next_attempt, should_park

__all__ = ["next_attempt", "should_park"]
