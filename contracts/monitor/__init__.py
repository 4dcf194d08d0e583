"""The national monitor's minimal dataset as a versioned contract: one pseudonymous record
per referral (``MonitorRecord``), published as JSON Schema (``dataset.schema.json``) and as
a Frictionless Data Package (``datapackage.json``, Table Schema of the CSV). Both files are
rendered from this model (``contracts/monitor/rendering.py``) and a test keeps them current.

Never in it: names, BSN, contact details, free text, exact dates of birth, postcodes, the
referral id or any other identifier of a person, a practice or a practitioner.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from contracts.codes import AgeBand, ReferrerDiscipline, SubmissionChannel, Urgency, WorTheme
from contracts.events.status import (
    ActivityKind,
    DeclineReason,
    PositiveHealthDimension,
    SignalKind,
)

DATASET_NAME = "brug-monitor-referrals"
DATASET_VERSION = "1.0.0"
"""Semantic version of the dataset contract: a new field is minor, a changed meaning major."""


class EndStatus(StrEnum):
    """How the referral ended."""

    COMPLETED = "completed"
    DECLINED = "declined"
    UNREACHABLE = "unreachable"
    WITHDRAWN_BY_PATIENT = "withdrawn-by-patient"
    WITHDRAWN_BY_GP = "withdrawn-by-gp"


MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
MUNICIPALITY_PATTERN = r"^GM[0-9]{4}$"


def _day(meaning: str, why: str) -> object:
    return Field(default=None, description=f"{meaning} (day, UTC). Why: {why}")


class MonitorRecord(BaseModel):
    """One referral in the minimal dataset. Every field says what it means and why it is
    there (``Why:``); the CSV column order is the field order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pseudonym: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="HMAC-SHA256 of the referral id under the monitor key (BRUG_MONITOR_KEY). "
        "Why: one row per referral, linkable across an installation's exports, and not "
        "the referral id, which the ledger and the GP know.",
    )
    referral_month: str = Field(
        pattern=MONTH_PATTERN,
        description="Month the GP's referral reached Brug (YYYY-MM). Why: every figure is "
        "counted in the month of referral; a month, not a day, because the day adds little "
        "and links more easily.",
    )
    municipality_code: str | None = Field(
        default=None,
        pattern=MUNICIPALITY_PATTERN,
        description="CBS code of the patient's municipality (GMxxxx), from the postcode's "
        "four digits. Why: municipalities fund Welzijn op Recept; figures per municipality "
        "are what they need. Empty only while the referral event has not been seen.",
    )
    organisation_id: str | None = Field(
        default=None,
        max_length=63,
        description="Directory id of the welfare organisation the referral was routed to. "
        "Why: figures per organisation; empty when it was never routed.",
    )
    referrer_discipline: ReferrerDiscipline = Field(
        default=ReferrerDiscipline.UNKNOWN,
        description="GP, POH-GGZ, POH-S or other, from the requester's PractitionerRole.code. "
        "Why: who refers is one of the monitor's questions; never the practitioner or AGB.",
    )
    channel: SubmissionChannel = Field(
        default=SubmissionChannel.UNKNOWN,
        description="FHIR REST or Kafka. Why: adoption of the integration per channel.",
    )
    age_band: AgeBand | None = Field(
        default=None,
        description="Coarse age band at referral. Why: who is referred; never a date of birth.",
    )
    themes: list[WorTheme] = Field(
        default_factory=list,
        description="WoR themes of the reason codes (one or more; unmapped: other). Why: why "
        "people are referred; never the codes or texts themselves.",
    )
    urgency: Urgency | None = Field(
        default=None, description="The GP's priority. Why: whether urgent referrals go faster."
    )
    received_on: date | None = _day(
        "The welfare organisation confirmed receipt (implied by any later status)",
        "the first step of the funnel",
    )  # type: ignore[assignment]
    accepted_on: date | None = _day("The organisation accepted the referral", "the funnel")  # type: ignore[assignment]
    first_contact_on: date | None = _day(
        "The coach first reached the person (implied by coaching or completion)",
        "the funnel and time to first contact",
    )  # type: ignore[assignment]
    ended_on: date | None = _day(
        "The referral ended (completed, declined, unreachable or withdrawn)",
        "duration and completeness",
    )  # type: ignore[assignment]
    days_to_first_contact: int | None = Field(
        default=None,
        ge=0,
        description="Days from referral to first contact. Why: the median is a key "
        "service-level figure for municipalities.",
    )
    end_status: EndStatus | None = Field(
        default=None, description="How the referral ended. Why: the outcome of the referral."
    )
    decline_reason: DeclineReason | None = Field(
        default=None,
        description="The coded reason of a decline (never the text). Why: declines by reason "
        "show capacity and target-group gaps.",
    )
    activity_kinds: list[ActivityKind] = Field(
        default_factory=list,
        description="Kinds of activity the person was linked to at completion (never the "
        "description). Why: what the sociale basis offered.",
    )
    feedback_to_gp_on: date | None = _day(
        "The GP system first had the welfare side's news (a pull read or an acknowledged "
        "push: the GP's receipt)",
        "the 2023 monitor found feedback to the GP missing; this measures it",
    )  # type: ignore[assignment]
    feedback_to_gp_channel: str | None = Field(
        default=None,
        pattern="^(pull|push)$",
        description="How that first receipt came: the GP system read it (pull) or its "
        "endpoint acknowledged a notification (push). Why: GP receipts per channel.",
    )
    days_to_feedback_to_gp: int | None = Field(
        default=None,
        ge=0,
        description="Days from referral to that first GP receipt. Why: the share with "
        "feedback within 30 days.",
    )
    overdue_received: bool = Field(
        default=False,
        description="The receipt timer of the directory's service level ran out. Why: "
        "overdue counts.",
    )
    overdue_first_contact: bool = Field(
        default=False,
        description="The first-contact timer ran out. Why: overdue counts.",
    )
    signal_kinds: list[SignalKind] = Field(
        default_factory=list,
        description="Kinds of signal the welfare side raised for the GP (never the text). "
        "Why: how often the social side speaks first (equality of both sides).",
    )
    positive_health_consented: bool = Field(
        default=False,
        description="At completion the person agreed to share Positive Health scores. Why: "
        "only consented changes are counted.",
    )
    ph_bodily_functions: int | None = Field(
        default=None,
        ge=-10,
        le=10,
        description="Positive Health change (after minus before), "
        "bodily functions; consented only. Why: outcome; published only aggregated.",
    )
    ph_mental_wellbeing: int | None = Field(
        default=None,
        ge=-10,
        le=10,
        description="Positive Health change, mental well-being; "
        "consented only. Why: outcome; published only aggregated.",
    )
    ph_meaningfulness: int | None = Field(
        default=None,
        ge=-10,
        le=10,
        description="Positive Health change, meaningfulness; "
        "consented only. Why: outcome; published only aggregated.",
    )
    ph_quality_of_life: int | None = Field(
        default=None,
        ge=-10,
        le=10,
        description="Positive Health change, quality of life; "
        "consented only. Why: outcome; published only aggregated.",
    )
    ph_participation: int | None = Field(
        default=None,
        ge=-10,
        le=10,
        description="Positive Health change, participation; "
        "consented only. Why: outcome; published only aggregated.",
    )
    ph_daily_functioning: int | None = Field(
        default=None,
        ge=-10,
        le=10,
        description="Positive Health change, daily functioning; "
        "consented only. Why: outcome; published only aggregated.",
    )


POSITIVE_HEALTH_FIELDS: dict[PositiveHealthDimension, str] = {
    dimension: "ph_" + dimension.value.replace("-", "_") for dimension in PositiveHealthDimension
}
LIST_FIELDS = ("themes", "activity_kinds", "signal_kinds")
FIELDS: tuple[str, ...] = tuple(MonitorRecord.model_fields)
