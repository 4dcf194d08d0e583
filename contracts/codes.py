"""Code lists shared by the event payloads."""

from __future__ import annotations

from enum import StrEnum


class WorTheme(StrEnum):
    """Welzijn op Recept themes a referral is about (see docs/ARCHITECTURE.md).

    Reason codes (ICPC-1 NL, SNOMED CT) map onto these through versioned tables
    (``contracts/mappings/``); ``OTHER`` stands for any reason no table maps, and carries
    neither its code nor its text.
    """

    LONELINESS = "loneliness"
    GRIEF_LOSS = "grief-loss"
    LOW_MOOD = "low-mood"
    MEANING = "meaning"
    ACTIVITY_EXERCISE = "activity-exercise"
    FINANCES = "finances"
    CARER_STRAIN = "carer-strain"
    HOUSING = "housing"
    OTHER = "other"


class AgeBand(StrEnum):
    """Coarse age: enough for a coach to prepare, too coarse to identify anyone."""

    UNDER_18 = "0-17"
    FROM_18 = "18-39"
    FROM_40 = "40-54"
    FROM_55 = "55-64"
    FROM_65 = "65-74"
    FROM_75 = "75-84"
    FROM_85 = "85+"

    @classmethod
    def for_age(cls, age: int) -> AgeBand:
        if age < 0:
            raise ValueError("age cannot be negative")
        bounds = (
            (18, cls.UNDER_18),
            (40, cls.FROM_18),
            (55, cls.FROM_40),
            (65, cls.FROM_55),
            (75, cls.FROM_65),
            (85, cls.FROM_75),
        )
        return next((band for limit, band in bounds if age < limit), cls.FROM_85)


class Urgency(StrEnum):
    """FHIR ServiceRequest.priority values that make sense for a welfare referral."""

    ROUTINE = "routine"
    URGENT = "urgent"
    ASAP = "asap"


class ReferralStatus(StrEnum):
    """Where a referral stands; mirrors FHIR Task.status so the GP side maps 1:1."""

    REQUESTED = "requested"
    RECEIVED = "received"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    IN_PROGRESS = "in-progress"
    ON_HOLD = "on-hold"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class ReferrerDiscipline(StrEnum):
    """Who referred, from ``PractitionerRole.code`` (``contracts/mappings/``)."""

    GP = "gp"
    POH_GGZ = "poh-ggz"
    POH_S = "poh-s"
    OTHER = "other"
    UNKNOWN = "unknown"


class SubmissionChannel(StrEnum):
    """How the GP system sent the referral: FHIR REST, or a FHIR Bundle on Kafka."""

    FHIR_REST = "fhir-rest"
    KAFKA = "kafka"
    UNKNOWN = "unknown"
