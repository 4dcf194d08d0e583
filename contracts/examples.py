"""One example event per published type: shown in the docs, written next to the schemas,
and validated against them by the contract tests. Fixed values keep the files stable."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from contracts.cloudevents import CloudEvent, EventData
from contracts.codes import AgeBand, ReferralStatus, Urgency, WorTheme
from contracts.events import (
    DeadLetter,
    ReferralCreated,
    ReferralStatusChanged,
    ReferralSubmitted,
    ReferralWithdrawn,
)
from contracts.events.status import (
    DeclineReason,
    ReferralStatusProblem,
    ReferralStatusReported,
    StatusProblemCode,
    WelfareStatus,
)

_REFERRAL_ID = UUID("0b5d3c1e-8f0a-4c55-9d7e-3f2a1b6c7d80")
_SUBMITTED_AT = datetime(2026, 11, 2, 9, 14, 3, tzinfo=UTC)
_ROUTED_AT = datetime(2026, 11, 2, 9, 14, 4, tzinfo=UTC)
_TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _submitted() -> ReferralSubmitted:
    return ReferralSubmitted(
        referral_id=_REFERRAL_ID,
        municipality_code="GM0363",
        themes=[WorTheme.LONELINESS, WorTheme.ACTIVITY_EXERCISE],
        age_band=AgeBand.FROM_75,
        urgency=Urgency.ROUTINE,
        submitted_at=_SUBMITTED_AT,
    )


def _created() -> ReferralCreated:
    return ReferralCreated(
        referral_id=_REFERRAL_ID,
        organisation_id="dynamo-amsterdam",
        municipality_code="GM0363",
        themes=[WorTheme.LONELINESS, WorTheme.ACTIVITY_EXERCISE],
        age_band=AgeBand.FROM_75,
        urgency=Urgency.ROUTINE,
        submitted_at=_SUBMITTED_AT,
        routed_at=_ROUTED_AT,
        details_url=f"http://127.0.0.1:8080/social/v1/referrals/{_REFERRAL_ID}",
    )


def _withdrawn() -> ReferralWithdrawn:
    return ReferralWithdrawn(
        referral_id=_REFERRAL_ID,
        organisation_id="dynamo-amsterdam",
        withdrawn_at=datetime(2026, 11, 4, 8, 30, tzinfo=UTC),
    )


def _status_changed() -> ReferralStatusChanged:
    return ReferralStatusChanged(
        referral_id=_REFERRAL_ID,
        organisation_id="dynamo-amsterdam",
        status=ReferralStatus.ACCEPTED,
        occurred_at=datetime(2026, 11, 3, 10, 0, tzinfo=UTC),
    )


def _status_reported() -> ReferralStatusReported:
    return ReferralStatusReported(
        referral_id=_REFERRAL_ID,
        organisation_id="dynamo-amsterdam",
        status=WelfareStatus.DECLINED,
        sequence=2,
        occurred_at=datetime(2026, 11, 3, 10, 0, tzinfo=UTC),
        decline_reason=DeclineReason.NO_CAPACITY,
    )


def _status_problem() -> ReferralStatusProblem:
    return ReferralStatusProblem(
        referral_id=_REFERRAL_ID,
        organisation_id="dynamo-amsterdam",
        rejected_event_id="case-system-event-17",
        problem=StatusProblemCode.ILLEGAL_TRANSITION,
        detail="completed cannot become accepted",
    )


def _dead_letter() -> DeadLetter:
    return DeadLetter(
        reason="unroutable",
        detail="no welfare organisation serves municipality GM9999",
        service="router",
        original_topic="brug.referrals.submitted.v1",
        original_partition=1,
        original_offset=42,
        original_key=str(_REFERRAL_ID),
        original_value='{"specversion":"1.0","...":"..."}',
        original_headers={"traceparent": _TRACEPARENT},
        attempts=1,
        failed_at=_ROUTED_AT,
    )


def example_events() -> dict[str, CloudEvent[EventData]]:
    """Example envelope per event type, keyed by the CloudEvents ``type``."""
    payloads: list[EventData] = [
        _submitted(),
        _created(),
        _withdrawn(),
        _status_changed(),
        _status_reported(),
        _status_problem(),
        _dead_letter(),
    ]
    return {
        # Parametrised by the payload's own class, so the data serialises with its fields.
        payload.EVENT_TYPE: CloudEvent[type(payload)].wrap(  # type: ignore[misc]
            payload,
            service="example",
            event_id=f"example-{payload.EVENT_TYPE}",
            time=_ROUTED_AT,
            traceparent=_TRACEPARENT,
        )
        for payload in payloads
    }
