"""Status events a welfare case system sends about a referral, and the problem events
Brug answers with when it cannot apply one. First cut of the feedback path (issue 4):
outcome details, signals and receipts extend these in later versions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Self
from uuid import UUID

from pydantic import Field, model_validator

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


class ReferralStatusReported(EventData):
    """Sent by the case system on ``brug.social.status.<org>.v1``, keyed by referral id."""

    EVENT_TYPE: ClassVar[str] = "nl.brug.referral.status-reported.v1"

    referral_id: UUID
    organisation_id: str = Field(pattern=ORGANISATION_ID_PATTERN)
    status: WelfareStatus
    sequence: int = Field(
        ge=1, description="The sender's counter per referral; orders events and spots repeats."
    )
    occurred_at: datetime
    decline_reason: DeclineReason | None = None
    decline_text: str | None = Field(
        default=None, max_length=500, description="Required when decline_reason is 'other'."
    )

    @model_validator(mode="after")
    def _a_decline_says_why(self) -> Self:
        if self.status is WelfareStatus.DECLINED and self.decline_reason is None:
            raise ValueError("a declined referral needs a decline_reason")
        if self.decline_reason is DeclineReason.OTHER and not self.decline_text:
            raise ValueError("decline_reason 'other' needs a decline_text")
        return self

    def subject(self) -> str:
        return str(self.referral_id)


class StatusProblemCode(StrEnum):
    ILLEGAL_TRANSITION = "illegal-transition"
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
