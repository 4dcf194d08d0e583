"""The welfare-side state machine and how statuses show on the GP's Task."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from contracts.codes import ReferralStatus
from contracts.events.status import (
    DeclineReason,
    ReferralStatusReported,
    StatusProblemCode,
    WelfareStatus,
)
from domain.status_machine import ALLOWED, TASK_VIEW, WELFARE_ENDINGS, judge

W = WelfareStatus


@pytest.mark.parametrize(
    ("path"),
    [
        [W.RECEIVED, W.ACCEPTED, W.FIRST_CONTACT, W.IN_PROGRESS, W.COMPLETED],
        [W.ACCEPTED, W.ON_HOLD, W.IN_PROGRESS, W.COMPLETED],
        [W.RECEIVED, W.DECLINED],
        [W.RECEIVED, W.ACCEPTED, W.UNREACHABLE],
        [W.ACCEPTED, W.FIRST_CONTACT, W.WITHDRAWN_BY_PATIENT],
    ],
)
def test_the_journeys_of_a_referral_are_allowed(path: list[WelfareStatus]) -> None:
    current: WelfareStatus | None = None
    for sequence, status in enumerate(path, start=1):
        assert judge(current, sequence - 1, status, sequence).apply, (current, status)
        current = status


@pytest.mark.parametrize(
    ("current", "incoming"),
    [
        (W.COMPLETED, W.ACCEPTED),
        (W.DECLINED, W.ACCEPTED),
        (None, W.COMPLETED),
        (W.RECEIVED, W.IN_PROGRESS),
    ],
)
def test_an_illegal_transition_is_rejected_with_why(
    current: WelfareStatus | None, incoming: WelfareStatus
) -> None:
    verdict = judge(current, 3, incoming, 4)
    assert not verdict.apply
    assert verdict.problem is StatusProblemCode.ILLEGAL_TRANSITION
    assert incoming.value in verdict.detail


def test_a_repeat_is_harmless_and_an_older_different_status_is_out_of_order() -> None:
    repeat = judge(W.ACCEPTED, 2, W.ACCEPTED, 2)
    assert repeat.duplicate and not repeat.apply
    late = judge(W.IN_PROGRESS, 4, W.ACCEPTED, 2)
    assert late.problem is StatusProblemCode.OUT_OF_ORDER


def test_every_status_has_a_task_view_and_endings_end() -> None:
    assert set(TASK_VIEW) == set(WelfareStatus) == {s for s in ALLOWED if s is not None}
    assert TASK_VIEW[W.DECLINED][0] is ReferralStatus.REJECTED
    assert TASK_VIEW[W.COMPLETED][0] is ReferralStatus.COMPLETED
    for ending in (W.COMPLETED, W.DECLINED, W.UNREACHABLE, W.WITHDRAWN_BY_PATIENT):
        assert ALLOWED[ending] == frozenset()
    assert {s for s, after in ALLOWED.items() if s is not None and not after} == WELFARE_ENDINGS


def _reported(**fields: object) -> ReferralStatusReported:
    values: dict[str, object] = {
        "referral_id": uuid.uuid4(),
        "organisation_id": "dynamo-amsterdam",
        "status": W.DECLINED,
        "sequence": 1,
        "occurred_at": datetime.now(UTC),
    }
    return ReferralStatusReported.model_validate(values | fields)


def test_a_decline_needs_a_reason_and_other_needs_words() -> None:
    with pytest.raises(ValidationError, match="decline_reason"):
        _reported()
    with pytest.raises(ValidationError, match="decline_text"):
        _reported(decline_reason=DeclineReason.OTHER)
    assert _reported(decline_reason=DeclineReason.OTHER, decline_text="verhuisd").decline_text
