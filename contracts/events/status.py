"""What a welfare case system says about a referral — status events, signals for the GP —
and what Brug answers: problem events when it cannot apply one, receipts when the GP
system has the feedback."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Literal, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.cloudevents import EventData
from contracts.topics import ORGANISATION_ID_PATTERN


class WelfareStatus(StrEnum):
    RECEIVED = "received"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    FIRST_CONTACT = "first-contact"
    IN_PROGRESS = "in-progress"
    ON_HOLD = "on-hold"
    COMPLETED = "completed"
    UNREACHABLE = "unreachable"
    WITHDRAWN_BY_PATIENT = "withdrawn-by-patient"


class DeclineReason(StrEnum):
    NO_CAPACITY = "no-capacity"
    OUTSIDE_TARGET_GROUP = "outside-target-group"
    PATIENT_DECLINED = "patient-declined"
    OTHER = "other"


class WorBusinessStatus(StrEnum):
    """Welzijn op Recept business statuses (``urn:brug:codesystem:wor-business-status``):
    finer than FHIR ``Task.status``; each maps onto one."""

    RECEIVED_BY_WELFARE = "received-by-welfare"
    ACCEPTED_BY_WELFARE = "accepted-by-welfare"
    INTAKE_SCHEDULED = "intake-scheduled"
    DECLINED_BY_WELFARE = "declined-by-welfare"
    FIRST_CONTACT_MADE = "first-contact-made"
    COACHING = "coaching"
    LINKED_TO_ACTIVITY = "linked-to-activity"
    ON_HOLD = "on-hold"
    COMPLETED_WITH_OUTCOME = "completed-with-outcome"
    PATIENT_UNREACHABLE = "patient-unreachable"
    WITHDRAWN_BY_PATIENT = "withdrawn-by-patient"


class ActivityKind(StrEnum):
    SOCIAL_ACTIVITY = "social-activity"
    EXERCISE = "exercise"
    VOLUNTEERING = "volunteering"
    COURSE = "course"
    BUDDY = "buddy"
    DEBT_COUNSELLING = "debt-counselling"
    INFORMAL_CARE_SUPPORT = "informal-care-support"
    OTHER = "other"


class LinkedActivity(BaseModel):
    """An activity or service the person was linked to (no addresses, no names of people)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ActivityKind
    description: str = Field(min_length=1, max_length=200)


class PositiveHealthDimension(StrEnum):
    """The six dimensions of Positive Health (Huber; Institute for Positive Health)."""

    BODILY_FUNCTIONS = "bodily-functions"
    MENTAL_WELLBEING = "mental-wellbeing"
    MEANINGFULNESS = "meaningfulness"
    QUALITY_OF_LIFE = "quality-of-life"
    PARTICIPATION = "participation"
    DAILY_FUNCTIONING = "daily-functioning"


class PositiveHealthScores(BaseModel):
    """One spider-web measurement: a 0 to 10 score per dimension."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    measured_on: datetime
    scores: dict[PositiveHealthDimension, int]

    @model_validator(mode="after")
    def _all_six_from_zero_to_ten(self) -> Self:
        if set(self.scores) != set(PositiveHealthDimension):
            raise ValueError("Positive Health scores need all six dimensions")
        if any(not 0 <= score <= 10 for score in self.scores.values()):
            raise ValueError("Positive Health scores run from 0 to 10")
        return self


class CompletionOutcome(BaseModel):
    """What the coaching led to: the GP's *terugkoppeling*."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    activities: list[LinkedActivity] = Field(default_factory=list, max_length=20)
    summary: str = Field(
        min_length=1, max_length=2000, description="The closing summary the GP reads."
    )
    positive_health_consent: bool = Field(
        default=False,
        description="The patient agreed that Positive Health scores go to the GP.",
    )
    positive_health_before: PositiveHealthScores | None = None
    positive_health_after: PositiveHealthScores | None = None

    @model_validator(mode="after")
    def _scores_only_with_consent(self) -> Self:
        has_scores = self.positive_health_before or self.positive_health_after
        if has_scores and not self.positive_health_consent:
            raise ValueError("Positive Health scores go to the GP only with the patient's consent")
        return self


class StatusReport(BaseModel):
    """A status as the case system states it; the body of
    ``POST /social/v1/referrals/{id}/status`` (the path and the token name the rest)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    status: WelfareStatus
    sequence: int = Field(
        ge=1, description="The sender's counter per referral; orders events and spots repeats."
    )
    occurred_at: datetime
    decline_reason: DeclineReason | None = None
    decline_text: str | None = Field(
        default=None, max_length=500, description="Required when decline_reason is 'other'."
    )
    business_status: WorBusinessStatus | None = Field(
        default=None,
        description="A finer WoR status that fits ``status`` (e.g. intake-scheduled when "
        "accepted); the default for the status otherwise.",
    )
    outcome: CompletionOutcome | None = Field(
        default=None, description="Required when the status is 'completed'."
    )

    @model_validator(mode="after")
    def _a_decline_says_why(self) -> Self:
        if self.status is WelfareStatus.DECLINED and self.decline_reason is None:
            raise ValueError("a declined referral needs a decline_reason")
        if self.decline_reason is DeclineReason.OTHER and not self.decline_text:
            raise ValueError("decline_reason 'other' needs a decline_text")
        if self.status is WelfareStatus.COMPLETED and self.outcome is None:
            raise ValueError("a completed referral needs an outcome for the GP")
        if self.outcome is not None and self.status is not WelfareStatus.COMPLETED:
            raise ValueError("only a completed referral carries an outcome")
        return self


class ReferralStatusReported(StatusReport, EventData):
    """Sent by the case system on ``brug.social.status.<org>.v1``, keyed by referral id."""

    EVENT_TYPE: ClassVar[str] = "nl.brug.referral.status-reported.v1"

    referral_id: UUID
    organisation_id: str = Field(pattern=ORGANISATION_ID_PATTERN)

    def subject(self) -> str:
        return str(self.referral_id)


class SignalKind(StrEnum):
    HEALTH_CONCERN = "health-concern"
    REFERRAL_BACK = "referral-back"
    QUESTION = "question"


class SignalReport(BaseModel):
    """A signal as the case system states it; the body of
    ``POST /social/v1/referrals/{id}/signals``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    signal_id: UUID = Field(description="Chosen by the sender; a repeat with it is harmless.")
    kind: SignalKind
    text: str = Field(min_length=1, max_length=2000)
    action_requested: bool = False
    occurred_at: datetime


class SignalRaised(SignalReport, EventData):
    """The welfare side speaks first: a concern noticed during coaching, or a referral back
    to the GP. Sent on ``brug.social.status.<org>.v1`` like a status; reaches the GP as a
    FHIR Communication (and a Task when action is asked)."""

    EVENT_TYPE: ClassVar[str] = "nl.brug.referral.signal-raised.v1"

    referral_id: UUID
    organisation_id: str = Field(pattern=ORGANISATION_ID_PATTERN)

    def subject(self) -> str:
        return str(self.referral_id)


class StatusProblemCode(StrEnum):
    ILLEGAL_TRANSITION = "illegal-transition"
    UNFITTING_BUSINESS_STATUS = "unfitting-business-status"
    REFERRAL_ENDED = "referral-ended"
    OUT_OF_ORDER = "out-of-order"
    UNKNOWN_REFERRAL = "unknown-referral"
    FOREIGN_ORGANISATION = "foreign-organisation"


class ReferralStatusProblem(EventData):
    """Brug's answer on ``brug.social.problems.<org>.v1`` to a status event it did not apply."""

    EVENT_TYPE: ClassVar[str] = "nl.brug.referral.status-problem.v1"

    referral_id: UUID
    organisation_id: str = Field(pattern=ORGANISATION_ID_PATTERN)
    rejected_event_id: str
    problem: StatusProblemCode
    detail: str = Field(max_length=500)

    def subject(self) -> str:
        return str(self.referral_id)


class FeedbackReceivedByGp(EventData):
    """A receipt on ``brug.social.referrals.<org>.v1``: the GP system has this feedback,
    because it read it (pull) or its endpoint acknowledged the notification (push)."""

    EVENT_TYPE: ClassVar[str] = "nl.brug.feedback.received-by-gp.v1"

    referral_id: UUID
    organisation_id: str = Field(pattern=ORGANISATION_ID_PATTERN)
    resource: str = Field(
        description="What reached the GP: Task/<id>/_history/<version> or Communication/<id>."
    )
    channel: Literal["pull", "push"]
    received_at: datetime

    def subject(self) -> str:
        return str(self.referral_id)
