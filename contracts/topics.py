"""Every Kafka topic Brug uses, in one place (see docs/ARCHITECTURE.md for producers/consumers)."""

from __future__ import annotations

import re
from datetime import timedelta

ORGANISATION_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"

REFERRALS_SUBMITTED = "brug.referrals.submitted.v1"
"""Referrals accepted at the medical edge, minimised, waiting to be routed. Key: referral id."""

DEAD_LETTER = "brug.deadletter.v1"
"""Records no handler could process, with the reason. Key: the original record's key."""

OVERDUE = "brug.referrals.overdue.v1"
"""Service-level timers that ran out, for operators. Key: referral id."""

GP_REFERRALS_PATTERN = r"brug\.gp\.referrals\.[a-z0-9][a-z0-9-]*\.v1"
"""Every GP system's inbound topic, for the gateway's pattern subscription."""


def gp_referrals(client_id: str) -> str:
    """FHIR Bundles a GP system on the bus submits (same as POST [base]). Key: its request id.
    Carries personal data, so it is kept hours only (see ``all_topics``)."""
    return f"brug.gp.referrals.{_checked(client_id)}.v1"


def gp_outcomes(client_id: str) -> str:
    """The answer to each inbound Bundle: transaction-response or OperationOutcome.
    Key: the request's key; header ``brug-status``: the HTTP status it would have had."""
    return f"brug.gp.outcomes.{_checked(client_id)}.v1"


def gp_changes(client_id: str) -> str:
    """Id-only notices that one of the GP system's Tasks or Communications changed.
    Key: referral id."""
    return f"brug.gp.changes.{_checked(client_id)}.v1"


GP_CHANGES_PATTERN = r"brug\.gp\.changes\.[a-z0-9][a-z0-9-]*\.v1"


def client_of_gp_topic(topic: str) -> str | None:
    match = re.fullmatch(r"brug\.gp\.referrals\.([a-z0-9][a-z0-9-]*)\.v1", topic)
    return match.group(1) if match else None


def social_referrals(organisation_id: str) -> str:
    """Referral events for one welfare organisation. Key: referral id."""
    return f"brug.social.referrals.{_checked(organisation_id)}.v1"


def social_status(organisation_id: str) -> str:
    """Status events a welfare organisation sends back. Key: referral id. Carries the
    coach's texts, so it is kept days only (see ``all_topics``)."""
    return f"brug.social.status.{_checked(organisation_id)}.v1"


def social_problems(organisation_id: str) -> str:
    """Brug's answers to status events it could not apply. Key: referral id."""
    return f"brug.social.problems.{_checked(organisation_id)}.v1"


def _checked(organisation_id: str) -> str:
    if not re.fullmatch(ORGANISATION_ID_PATTERN, organisation_id):
        raise ValueError(f"not a valid organisation id for a topic name: {organisation_id!r}")
    return organisation_id


# Every topic has an explicit retention, stated in docs/PRIVACY.md (its test compares them),
# so none depends on the broker's default. Topics whose records carry personal data keep
# them briefly: a GP system's inbound Bundles (BSN, diagnoses) only until the gateway has
# answered them, dead letters (the original record) only until an operator has looked (the
# console keeps its own copy in the ledger), the case systems' statuses (the coach's texts)
# until feedback has applied them (it does so within seconds; an outage alerts in minutes).
GP_INBOUND_RETENTION = timedelta(hours=6)
DEAD_LETTER_RETENTION = timedelta(days=3)
STATUS_RETENTION = timedelta(days=3)
EVENT_RETENTION = timedelta(days=7)
"""The thin events' topics (ids and codes only): a week, as the broker's default."""

SEGMENTS_PER_RETENTION = 10
"""Kafka deletes whole segments, once the newest record in one is older than the
retention: a segment still being written to keeps its oldest record past it. Rolling a
segment every tenth of the period bounds a record's life at the period and a tenth (plus
the broker's retention check, every 5 minutes by default)."""


def retention(kept: timedelta) -> dict[str, str]:
    """The topic configuration that keeps records for ``kept`` (and not much longer)."""
    kept_ms = int(kept.total_seconds() * 1000)
    return {"retention.ms": str(kept_ms), "segment.ms": str(kept_ms // SEGMENTS_PER_RETENTION)}


def all_topics(
    organisation_ids: list[str],
    gp_client_ids: list[str],
    *,
    gp_inbound_retention: timedelta = GP_INBOUND_RETENTION,
    dead_letter_retention: timedelta = DEAD_LETTER_RETENTION,
    status_retention: timedelta = STATUS_RETENTION,
) -> list[tuple[str, dict[str, str]]]:
    """Every topic Brug needs, with its topic configuration, for these organisations and
    GP systems."""
    per_organisation: list[tuple[str, dict[str, str]]] = [
        pair
        for organisation_id in organisation_ids
        for pair in (
            (social_referrals(organisation_id), retention(EVENT_RETENTION)),
            (social_status(organisation_id), retention(status_retention)),
            (social_problems(organisation_id), retention(EVENT_RETENTION)),
        )
    ]
    per_gp_system = [
        pair
        for client_id in gp_client_ids
        for pair in (
            (gp_referrals(client_id), retention(gp_inbound_retention)),
            (gp_outcomes(client_id), retention(EVENT_RETENTION)),
            (gp_changes(client_id), retention(EVENT_RETENTION)),
        )
    ]
    return [
        (REFERRALS_SUBMITTED, retention(EVENT_RETENTION)),
        (DEAD_LETTER, retention(dead_letter_retention)),
        (OVERDUE, retention(EVENT_RETENTION)),
        *per_organisation,
        *per_gp_system,
    ]
