"""What the assigned welfare organisation fetches (notified pull): the minimised referral.

Served only over authenticated HTTPS (``GET /social/v1/referrals/{id}``), never on Kafka.
This model is the allow-list of what crosses to the social domain: nothing else does.
Deliberately absent: BSN, diagnoses, the code, text or display of any reason (a reason no
table maps is theme ``other``, nothing more), Condition details, medication, observations,
extensions.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from contracts.codes import AgeBand, Urgency, WorTheme


class _Details(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Address(_Details):
    lines: list[str] = Field(default_factory=list)
    postal_code: str | None = None
    city: str | None = None


class Person(_Details):
    given_names: list[str] = Field(default_factory=list)
    family_name: str | None = None
    display_name: str
    birth_year: int | None = None
    age: int | None = None
    age_band: AgeBand
    phone: list[str] = Field(default_factory=list)
    email: list[str] = Field(default_factory=list)
    address: Address | None = None
    municipality_code: str


class Referrer(_Details):
    name: str | None = None
    organisation_name: str | None = None
    agb: str
    phone: list[str] = Field(default_factory=list)
    email: list[str] = Field(default_factory=list)


class ReferralDetails(_Details):
    referral_id: UUID
    organisation_id: str
    person: Person
    question: str = Field(
        description="The GP's question for the coach (hulpvraag): ServiceRequest.note and "
        "patientInstruction, as written. The GP writes it for the coach, so it crosses "
        "unchanged; Brug does not filter it."
    )
    themes: list[WorTheme] = Field(
        description="WoR themes of the reason codes; a reason no table maps is 'other' "
        "(never its code or text)."
    )
    urgency: Urgency
    referrer: Referrer
    submitted_at: datetime


class Published(BaseModel):
    """The answer to a status or signal POSTed by a case system: it is on the status topic
    under ``event_id``; a problem, if the feedback service finds one, comes on the problem
    topic naming that id. ``duplicate``: Brug already had it (a harmless repeat)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    event_id: str
    duplicate: bool = False


class StatusView(BaseModel):
    """``GET /social/v1/referrals/{id}/status``: where Brug has the referral, for a case
    system without Kafka to reconcile with (it does not read the problem topic)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    referral_id: UUID
    status: str | None = Field(description="The last welfare status applied; null if none yet.")
    sequence: int = Field(description="Its sequence: the next status needs a higher one.")
    business_status: str | None
    posted_sequence: int = Field(
        description="The highest sequence POSTed over HTTPS; above ``sequence`` while it is "
        "still being applied, or if the feedback service refused it (a race with another event)."
    )
    withdrawn_by_gp: bool
