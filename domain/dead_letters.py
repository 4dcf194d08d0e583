"""Which dead letters an operator may replay or discard, and the window a bulk replay
chooses them by (pure rules; ``services/console/actions.py`` applies them).

A dead letter is ``parked`` until an operator acts. A replay first *claims* it
(``replaying``, committed before anything is published), so two operators, or a bulk
replay run twice, send it at most once; it ends ``replayed``, or back ``parked`` when Kafka
certainly did not take it. A claim whose outcome is unknown (its run died, or Kafka did
not answer in time) stays ``replaying``: it may be on the topic already, so nothing takes
it up by itself; once the claim is stale an operator may replay or discard it by its id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import get_args

from contracts.events.deadletter import DeadLetterReason

PARKED, REPLAYING, REPLAYED, DISCARDED = "parked", "replaying", "replayed", "discarded"
STATES = (PARKED, REPLAYING, REPLAYED, DISCARDED)
REASONS: tuple[str, ...] = get_args(DeadLetterReason)

# Far longer than one publish takes (a bounded wait for Kafka's acknowledgement): a claim
# this old belongs to a run that is gone.
STALE_CLAIM = timedelta(minutes=10)


def may_act_on(state: str, claimed_at: datetime | None, now: datetime) -> bool:
    """Parked, or claimed by a replay so long ago that its run must have ended without
    saying how (an operator's explicit decision, by the letter's id)."""
    if state == PARKED:
        return True
    return state == REPLAYING and claimed_at is not None and now - claimed_at >= STALE_CLAIM


def why_not(state: str, by: str | None, claimed_at: datetime | None, now: datetime) -> str:
    """Why a dead letter in ``state`` may not be acted on now (``may_act_on`` is False)."""
    if state == REPLAYING:
        left = (STALE_CLAIM - (now - claimed_at)).total_seconds() if claimed_at else 0.0
        minutes = max(1, math.ceil(left / 60))
        return (
            f"being replayed by {by}; if that run died, it may be replayed or discarded "
            f"again in {minutes} min (it may already be on its topic)"
        )
    return f"already {state} by {by}"


class WindowRefused(ValueError):
    """The bulk replay's choice is not valid; the message says why, for the operator."""


@dataclass(frozen=True)
class ReplayWindow:
    """Parked dead letters with ``reason`` that failed at ``since`` or later, before
    ``until``."""

    reason: str
    since: datetime
    until: datetime

    def contains(self, reason: str, failed_at: datetime) -> bool:
        return reason == self.reason and self.since <= failed_at < self.until

    def describe(self) -> str:
        return f"reason {self.reason}, failed {self.since.isoformat()} to {self.until.isoformat()}"


def replay_window(
    reason: str, since: datetime, until: datetime | None, now: datetime
) -> ReplayWindow:
    """The window a bulk replay asked for, checked: a known reason, times with a zone
    (an operator's local time is not guessed), ``since`` before ``until`` (default now)."""
    if reason not in REASONS:
        raise WindowRefused(f"unknown reason {reason!r}: one of {', '.join(REASONS)}")
    end = now if until is None else until
    for name, moment in (("since", since), ("until", end)):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise WindowRefused(f"--{name} needs a time zone, e.g. 2026-12-01T08:00:00+01:00 or …Z")
    if since >= end:
        raise WindowRefused("--since must be before --until")
    if since > now:
        raise WindowRefused("--since is in the future: nothing has failed then yet")
    return ReplayWindow(reason, since, end)
