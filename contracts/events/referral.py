"""Referral events. None carries personal data: names, contact details and free text
stay in the ledger and are fetched by the assigned organisation (notified pull)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field

from contracts.cloudevents import EventData
from contracts.codes import (
    AgeBand,
    ReferrerDiscipline,
    SubmissionChannel,
    Urgency,
    WorTheme,
)
from contracts.topics import ORGANISATION_ID_PATTERN

MUNICIPALITY_CODE_PATTERN = r"^GM[0-9]{4}$"


class ReferralSubmitted(EventData):
    """A GP referral accepted at the medical edge and stored, not yet routed."""

    EVENT_TYPE: ClassVar[str] = "nl.brug.referral.submitted.v1"

    referral_id: UUID
    municipality_code: str = Field(pattern=MUNICIPALITY_CODE_PATTERN, examples=["GM0363"])
    themes: list[WorTheme] = Field(min_length=1)
    age_band: AgeBand
    urgency: Urgency = Urgency.ROUTINE
    submitted_at: datetime
    referrer_discipline: ReferrerDiscipline | None = Field(
        default=None,
        description="GP, POH-GGZ, POH-S or other, from the requester's PractitionerRole.code "
        "(for the monitor; never the practitioner). Absent from older producers.",
    )
    channel: SubmissionChannel | None = Field(
        default=None, description="How the GP system sent it: FHIR REST or Kafka."
    )

    def subject(self) -> str:
        return str(self.referral_id)


class ReferralCreated(EventData):
    """A referral assigned to a welfare organisation: what its case system receives."""

    EVENT_TYPE: ClassVar[str] = "nl.brug.referral.created.v1"

    referral_id: UUID
    organisation_id: str = Field(pattern=ORGANISATION_ID_PATTERN)
    municipality_code: str = Field(pattern=MUNICIPALITY_CODE_PATTERN)
    themes: list[WorTheme] = Field(min_length=1)
    age_band: AgeBand
    urgency: Urgency
    submitted_at: datetime
    routed_at: datetime
    details_url: str = Field(description="Where the case system fetches the personal details.")

    def subject(self) -> str:
        return str(self.referral_id)


class ReferralWithdrawn(EventData):
    """The GP withdrew the referral: the organisation stops, and the details answer 410."""

    EVENT_TYPE: ClassVar[str] = "nl.brug.referral.withdrawn.v1"

    referral_id: UUID
    organisation_id: str = Field(pattern=ORGANISATION_ID_PATTERN)
    withdrawn_at: datetime
    withdrawn_by: Literal["gp"] = "gp"

    def subject(self) -> str:
        return str(self.referral_id)


class ServiceLevelTimer(StrEnum):
    RECEIVED = "received"
    FIRST_CONTACT = "first-contact"


class ReferralOverdue(EventData):
    """A service-level timer ran out: the organisation did not confirm receipt, or made no
    first contact, within the working days agreed in the directory. For operators on
    ``brug.referrals.overdue.v1``; the GP sees it on the Task and its change feed."""

    EVENT_TYPE: ClassVar[str] = "nl.brug.referral.overdue.v1"

    referral_id: UUID
    organisation_id: str = Field(pattern=ORGANISATION_ID_PATTERN)
    timer: ServiceLevelTimer
    due_at: datetime
    detected_at: datetime

    def subject(self) -> str:
        return str(self.referral_id)
