"""Referrals' lives as the monitor reads them: each a list of (topic, CloudEvent) as Brug
and the case systems put them on Kafka, with the record the monitor must make of it. The
handler tests and the integration tests tell the same stories."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from contracts import topics
from contracts.cloudevents import CloudEvent, EventData
from contracts.codes import AgeBand, ReferrerDiscipline, SubmissionChannel, Urgency, WorTheme
from contracts.events import (
    FeedbackReceivedByGp,
    ReferralCreated,
    ReferralOverdue,
    ReferralStatusReported,
    ReferralSubmitted,
    ReferralWithdrawn,
    SignalRaised,
)
from contracts.events.referral import ServiceLevelTimer
from contracts.events.status import (
    ActivityKind,
    CompletionOutcome,
    DeclineReason,
    LinkedActivity,
    PositiveHealthDimension,
    PositiveHealthScores,
    SignalKind,
    WelfareStatus,
)
from contracts.monitor import EndStatus, MonitorRecord
from domain.monitor.dataset import referral_pseudonym

CLOUDEVENTS = {"content-type": "application/cloudevents+json"}
MARKER = "Johanna-de-Vries-Bakker-1946"
"""A name-like marker in every free text of the stories: it must never reach the dataset."""

Record = tuple[str, CloudEvent[Any]]


@dataclass
class Story:
    referral_id: uuid.UUID
    organisation_id: str
    municipality_code: str
    start: datetime
    records: list[Record] = field(default_factory=list)

    def event(self, topic: str, data: EventData, event_id: str | None = None) -> None:
        self.records.append(
            (topic, CloudEvent[type(data)].wrap(data, service="story", event_id=event_id))  # type: ignore[misc]
        )

    def day(self, days: int) -> datetime:
        return self.start + timedelta(days=days)

    def pseudonym(self, key: str) -> str:
        return referral_pseudonym(self.referral_id, key)

    @property
    def key(self) -> bytes:
        return str(self.referral_id).encode()


def _begin(
    organisation_id: str, municipality_code: str, start: datetime, **submitted: Any
) -> Story:
    story = Story(uuid.uuid4(), organisation_id, municipality_code, start)
    common = {
        "referral_id": story.referral_id,
        "municipality_code": municipality_code,
        "themes": [WorTheme.LONELINESS, WorTheme.ACTIVITY_EXERCISE],
        "age_band": AgeBand.FROM_75,
        "urgency": Urgency.ROUTINE,
        "submitted_at": start,
    }
    story.event(
        topics.REFERRALS_SUBMITTED,
        ReferralSubmitted(**common, **submitted),
        event_id=str(uuid.uuid5(story.referral_id, ReferralSubmitted.EVENT_TYPE)),
    )
    routed = {k: v for k, v in common.items() if k != "submitted_at"}
    story.event(
        topics.social_referrals(organisation_id),
        ReferralCreated(
            **routed,
            organisation_id=organisation_id,
            submitted_at=start,
            routed_at=start + timedelta(seconds=1),
            details_url=f"http://127.0.0.1:8081/social/v1/referrals/{story.referral_id}",
        ),
        event_id=str(uuid.uuid5(story.referral_id, ReferralCreated.EVENT_TYPE)),
    )
    return story


def _status(story: Story, status: WelfareStatus, sequence: int, day: int, **more: Any) -> None:
    story.event(
        topics.social_status(story.organisation_id),
        ReferralStatusReported(
            referral_id=story.referral_id,
            organisation_id=story.organisation_id,
            status=status,
            sequence=sequence,
            occurred_at=story.day(day),
            **more,
        ),
    )


def _scores(when: datetime, score: int) -> PositiveHealthScores:
    return PositiveHealthScores(
        measured_on=when, scores=dict.fromkeys(PositiveHealthDimension, score)
    )


def completed(
    organisation_id: str, municipality_code: str, start: datetime
) -> tuple[Story, MonitorRecord, str]:
    """Referred by a POH-GGZ over Kafka; received, accepted, first contact on day 3, a
    signal, the first-contact timer ran out, completed with consented Positive Health on
    day 20, the GP read the feedback on day 21. Returns the story, its expected record
    (under ``key``: fill the pseudonym in) and a description."""
    story = _begin(
        organisation_id,
        municipality_code,
        start,
        referrer_discipline=ReferrerDiscipline.POH_GGZ,
        channel=SubmissionChannel.KAFKA,
    )
    _status(story, WelfareStatus.RECEIVED, 1, 1)
    _status(story, WelfareStatus.ACCEPTED, 2, 2)
    _status(story, WelfareStatus.FIRST_CONTACT, 3, 3)
    story.event(
        topics.social_status(organisation_id),
        SignalRaised(
            referral_id=story.referral_id,
            organisation_id=organisation_id,
            signal_id=uuid.uuid4(),
            kind=SignalKind.HEALTH_CONCERN,
            text=f"{MARKER} seemed more forgetful",
            occurred_at=story.day(5),
        ),
    )
    story.event(
        topics.OVERDUE,
        ReferralOverdue(
            referral_id=story.referral_id,
            organisation_id=organisation_id,
            timer=ServiceLevelTimer.FIRST_CONTACT,
            due_at=story.day(2),
            detected_at=story.day(2),
        ),
        event_id=str(uuid.uuid5(story.referral_id, "overdue:first-contact")),
    )
    _status(
        story,
        WelfareStatus.COMPLETED,
        4,
        20,
        outcome=CompletionOutcome(
            activities=[
                LinkedActivity(kind=ActivityKind.EXERCISE, description=f"{MARKER} walks"),
                LinkedActivity(kind=ActivityKind.SOCIAL_ACTIVITY, description="lunch"),
            ],
            summary=f"{MARKER} joined the walking group",
            positive_health_consent=True,
            positive_health_before=_scores(story.day(3), 4),
            positive_health_after=_scores(story.day(19), 7),
        ),
    )
    story.event(
        topics.social_referrals(organisation_id),
        FeedbackReceivedByGp(
            referral_id=story.referral_id,
            organisation_id=organisation_id,
            resource=f"Communication/{uuid.uuid4()}",
            channel="pull",
            received_at=story.day(21),
        ),
    )
    expected = MonitorRecord(
        pseudonym="0" * 64,
        referral_month=start.strftime("%Y-%m"),
        municipality_code=municipality_code,
        organisation_id=organisation_id,
        referrer_discipline=ReferrerDiscipline.POH_GGZ,
        channel=SubmissionChannel.KAFKA,
        age_band=AgeBand.FROM_75,
        themes=[WorTheme.ACTIVITY_EXERCISE, WorTheme.LONELINESS],
        urgency=Urgency.ROUTINE,
        received_on=_on(story.day(1)),
        accepted_on=_on(story.day(2)),
        first_contact_on=_on(story.day(3)),
        ended_on=_on(story.day(20)),
        days_to_first_contact=3,
        end_status=EndStatus.COMPLETED,
        activity_kinds=[ActivityKind.EXERCISE, ActivityKind.SOCIAL_ACTIVITY],
        feedback_to_gp_on=_on(story.day(21)),
        feedback_to_gp_channel="pull",
        days_to_feedback_to_gp=21,
        overdue_first_contact=True,
        signal_kinds=[SignalKind.HEALTH_CONCERN],
        positive_health_consented=True,
        **{f"ph_{d.value.replace('-', '_')}": 3 for d in PositiveHealthDimension},
    )
    return story, expected, "completed"


def declined(
    organisation_id: str, municipality_code: str, start: datetime
) -> tuple[Story, MonitorRecord, str]:
    """Referred by a GP over FHIR; declined for lack of capacity on day 2."""
    story = _begin(
        organisation_id,
        municipality_code,
        start,
        referrer_discipline=ReferrerDiscipline.GP,
        channel=SubmissionChannel.FHIR_REST,
    )
    _status(
        story,
        WelfareStatus.DECLINED,
        1,
        2,
        decline_reason=DeclineReason.NO_CAPACITY,
        decline_text=f"{MARKER}: waiting list full",
    )
    expected = MonitorRecord(
        pseudonym="0" * 64,
        referral_month=start.strftime("%Y-%m"),
        municipality_code=municipality_code,
        organisation_id=organisation_id,
        referrer_discipline=ReferrerDiscipline.GP,
        channel=SubmissionChannel.FHIR_REST,
        age_band=AgeBand.FROM_75,
        themes=[WorTheme.ACTIVITY_EXERCISE, WorTheme.LONELINESS],
        urgency=Urgency.ROUTINE,
        received_on=_on(story.day(2)),
        ended_on=_on(story.day(2)),
        end_status=EndStatus.DECLINED,
        decline_reason=DeclineReason.NO_CAPACITY,
    )
    return story, expected, "declined"


def withdrawn(
    organisation_id: str, municipality_code: str, start: datetime
) -> tuple[Story, MonitorRecord, str]:
    """From an older producer (no discipline or channel); received, then withdrawn by the
    GP on day 4."""
    story = _begin(organisation_id, municipality_code, start)
    _status(story, WelfareStatus.RECEIVED, 1, 1)
    story.event(
        topics.social_referrals(organisation_id),
        ReferralWithdrawn(
            referral_id=story.referral_id,
            organisation_id=organisation_id,
            withdrawn_at=story.day(4),
        ),
        event_id=str(uuid.uuid5(story.referral_id, ReferralWithdrawn.EVENT_TYPE)),
    )
    expected = MonitorRecord(
        pseudonym="0" * 64,
        referral_month=start.strftime("%Y-%m"),
        municipality_code=municipality_code,
        organisation_id=organisation_id,
        age_band=AgeBand.FROM_75,
        themes=[WorTheme.ACTIVITY_EXERCISE, WorTheme.LONELINESS],
        urgency=Urgency.ROUTINE,
        received_on=_on(story.day(1)),
        ended_on=_on(story.day(4)),
        end_status=EndStatus.WITHDRAWN_BY_GP,
    )
    return story, expected, "withdrawn"


def _on(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


STORIES = (completed, declined, withdrawn)


def told(
    organisation_id: str, municipality_code: str, start: datetime, key: str
) -> list[tuple[Story, MonitorRecord]]:
    """Every story once, each expected record under its pseudonym for ``key``."""
    told = []
    for tell in STORIES:
        story, expected, _ = tell(organisation_id, municipality_code, start)
        told.append((story, expected.model_copy(update={"pseudonym": story.pseudonym(key)})))
    return told
