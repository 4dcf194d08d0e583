"""One example event per published type: shown in the docs, written next to the schemas,
and validated against them by the contract tests. Fixed values keep the files stable."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from contracts.cloudevents import CloudEvent, EventData
from contracts.codes import AgeBand, Urgency, WorTheme
from contracts.events import (
    DeadLetter,
    ReferralCreated,
    ReferralSubmitted,
    ReferralWithdrawn,
)
from contracts.events.gp import GpResourceChanged
from contracts.events.referral import ReferralOverdue, ServiceLevelTimer
from contracts.events.status import (
    ActivityKind,
    CompletionOutcome,
    FeedbackReceivedByGp,
    LinkedActivity,
    PositiveHealthDimension,
    PositiveHealthScores,
    ReferralStatusProblem,
    ReferralStatusReported,
    SignalKind,
    SignalRaised,
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


def _status_reported() -> ReferralStatusReported:
    def spider_web(day: int, score: int) -> PositiveHealthScores:
        scores = dict.fromkeys(PositiveHealthDimension, score)
        return PositiveHealthScores(measured_on=datetime(2026, 11, day, tzinfo=UTC), scores=scores)

    return ReferralStatusReported(
        referral_id=_REFERRAL_ID,
        organisation_id="dynamo-amsterdam",
        status=WelfareStatus.COMPLETED,
        sequence=5,
        occurred_at=datetime(2026, 11, 30, 15, 0, tzinfo=UTC),
        outcome=CompletionOutcome(
            activities=[
                LinkedActivity(kind=ActivityKind.SOCIAL_ACTIVITY, description="Buurtkamer lunch"),
                LinkedActivity(kind=ActivityKind.EXERCISE, description="Wandelgroep 65+"),
            ],
            summary="Three conversations; mevrouw now joins the weekly lunch and walking group.",
            positive_health_consent=True,
            positive_health_before=spider_web(5, 4),
            positive_health_after=spider_web(28, 6),
        ),
    )


def _signal() -> SignalRaised:
    return SignalRaised(
        referral_id=_REFERRAL_ID,
        organisation_id="dynamo-amsterdam",
        signal_id=UUID("6a1f7c2e-0d4b-4b8e-9a51-2c7e9f3d4a10"),
        kind=SignalKind.HEALTH_CONCERN,
        text="Noticed increasing forgetfulness during the last two visits.",
        action_requested=True,
        occurred_at=datetime(2026, 11, 20, 11, 0, tzinfo=UTC),
    )


def _receipt() -> FeedbackReceivedByGp:
    return FeedbackReceivedByGp(
        referral_id=_REFERRAL_ID,
        organisation_id="dynamo-amsterdam",
        resource="Communication/9c7d1e22-5b8a-4f3e-8d6c-1a2b3c4d5e6f",
        channel="push",
        received_at=datetime(2026, 11, 30, 15, 0, 1, tzinfo=UTC),
    )


def _overdue() -> ReferralOverdue:
    return ReferralOverdue(
        referral_id=_REFERRAL_ID,
        organisation_id="dynamo-amsterdam",
        timer=ServiceLevelTimer.RECEIVED,
        due_at=datetime(2026, 11, 3, 9, 14, 4, tzinfo=UTC),
        detected_at=datetime(2026, 11, 3, 9, 14, 5, tzinfo=UTC),
    )


def _resource_changed() -> GpResourceChanged:
    return GpResourceChanged(
        referral_id=_REFERRAL_ID,
        resource_type="Task",
        resource_id=UUID("3e0f5a9b-7c1d-4e2f-8a6b-5c4d3e2f1a0b"),
        version_id=4,
        task_id=UUID("3e0f5a9b-7c1d-4e2f-8a6b-5c4d3e2f1a0b"),
        changed_at=datetime(2026, 11, 30, 15, 0, tzinfo=UTC),
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
        _status_reported(),
        _status_problem(),
        _signal(),
        _receipt(),
        _overdue(),
        _resource_changed(),
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
