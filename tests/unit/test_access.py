"""The domain rule "may the organisation still read the details" (``domain/access.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.codes import ReferralStatus
from domain.access import may_read_details
from domain.status_machine import ENDED_TASK_STATUSES

NOW = datetime(2026, 12, 9, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
OPEN = sorted(set(ReferralStatus) - ENDED_TASK_STATUSES)
ENDED_NOT_WITHDRAWN = sorted(ENDED_TASK_STATUSES - {ReferralStatus.CANCELLED})


@pytest.mark.parametrize("status", OPEN)
def test_an_open_referral_is_readable(status: ReferralStatus) -> None:
    assert may_read_details(status, ended_at=None, now=NOW)


@pytest.mark.parametrize("status", ENDED_NOT_WITHDRAWN)
def test_an_ended_referral_is_not_readable_without_grace(status: ReferralStatus) -> None:
    assert not may_read_details(status, ended_at=NOW, now=NOW)
    assert not may_read_details(status, ended_at=NOW - HOUR, now=NOW)


@pytest.mark.parametrize("status", ENDED_NOT_WITHDRAWN)
def test_the_grace_period_keeps_an_ended_referral_readable_until_it_runs_out(
    status: ReferralStatus,
) -> None:
    grace = timedelta(days=14)
    assert may_read_details(status, ended_at=NOW - HOUR, now=NOW, grace=grace)
    assert not may_read_details(status, ended_at=NOW - grace, now=NOW, grace=grace)
    assert not may_read_details(status, ended_at=None, now=NOW, grace=grace)


def test_a_withdrawal_ends_access_at_once_whatever_the_grace() -> None:
    assert not may_read_details(
        ReferralStatus.CANCELLED, ended_at=NOW, now=NOW, grace=timedelta(days=14)
    )


def test_the_four_endings_and_the_withdrawal_are_the_status_machines() -> None:
    ended = {ReferralStatus.COMPLETED, ReferralStatus.REJECTED, ReferralStatus.FAILED}
    assert ended | {ReferralStatus.CANCELLED} == ENDED_TASK_STATUSES
