"""The rules of replaying dead letters (``domain/dead_letters.py``): what a bulk replay's
window may be, which letters an operator may act on (parked, or a stale claim), and why not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from domain.dead_letters import (
    DISCARDED,
    PARKED,
    REPLAYED,
    REPLAYING,
    STALE_CLAIM,
    WindowRefused,
    may_act_on,
    replay_window,
    why_not,
)

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_a_window_is_a_known_reason_between_two_zoned_times_until_now_by_default() -> None:
    amsterdam = timezone(timedelta(hours=1))
    since = datetime(2026, 12, 1, 8, 0, tzinfo=amsterdam)
    window = replay_window("unroutable", since, None, NOW)
    assert (window.reason, window.since, window.until) == ("unroutable", since, NOW)
    assert window.contains("unroutable", since), "from its start"
    assert not window.contains("unroutable", NOW), "to its end, not including it"
    assert not window.contains("gave-up", since + timedelta(hours=1)), "one reason"
    assert "reason unroutable, failed 2026-12-01T08:00:00+01:00 to" in window.describe()


@pytest.mark.parametrize(
    ("reason", "since", "until", "why"),
    [
        ("broken", NOW - timedelta(hours=1), None, "unknown reason 'broken'"),
        ("unroutable", datetime(2026, 12, 1, 8, 0), None, "--since needs a time zone"),
        ("unroutable", NOW - timedelta(hours=1), datetime(2026, 12, 2), "--until needs a time"),
        ("unroutable", NOW - timedelta(hours=1), NOW - timedelta(hours=2), "must be before"),
        ("unroutable", NOW, NOW, "must be before"),
        ("unroutable", NOW + timedelta(hours=1), NOW + timedelta(hours=2), "in the future"),
    ],
)
def test_a_window_that_cannot_be_meant_is_refused_saying_why(
    reason: str, since: datetime, until: datetime | None, why: str
) -> None:
    with pytest.raises(WindowRefused, match=why):
        replay_window(reason, since, until, NOW)


def test_only_a_parked_letter_or_a_stale_claim_may_be_acted_on() -> None:
    assert may_act_on(PARKED, None, NOW)
    assert not may_act_on(REPLAYING, NOW - STALE_CLAIM + timedelta(seconds=1), NOW)
    assert may_act_on(REPLAYING, NOW - STALE_CLAIM, NOW), "its run is gone"
    assert not may_act_on(REPLAYING, None, NOW)
    assert not may_act_on(REPLAYED, None, NOW)
    assert not may_act_on(DISCARDED, None, NOW)


def test_why_not_names_who_has_it() -> None:
    assert why_not(REPLAYED, "cli:olga", None, NOW) == "already replayed by cli:olga"
    claimed = why_not(REPLAYING, "cli:pim", NOW - timedelta(minutes=4), NOW)
    assert claimed.startswith("being replayed by cli:pim; if that run died")
    assert "again in 6 min" in claimed
