"""Every Kafka topic Brug uses, in one place (see docs/ARCHITECTURE.md for producers/consumers)."""

from __future__ import annotations

import re

ORGANISATION_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"

REFERRALS_SUBMITTED = "brug.referrals.submitted.v1"
"""Referrals accepted at the medical edge, minimised, waiting to be routed. Key: referral id."""

DEAD_LETTER = "brug.deadletter.v1"
"""Records no handler could process, with the reason. Key: the original record's key."""


def social_referrals(organisation_id: str) -> str:
    """Referral events for one welfare organisation. Key: referral id."""
    return f"brug.social.referrals.{_checked(organisation_id)}.v1"


def social_status(organisation_id: str) -> str:
    """Status events a welfare organisation sends back. Key: referral id."""
    return f"brug.social.status.{_checked(organisation_id)}.v1"


def _checked(organisation_id: str) -> str:
    if not re.fullmatch(ORGANISATION_ID_PATTERN, organisation_id):
        raise ValueError(f"not a valid organisation id for a topic name: {organisation_id!r}")
    return organisation_id


def all_topics(organisation_ids: list[str]) -> list[str]:
    """Every topic Brug needs for a directory with these organisations."""
    per_organisation = [
        topic
        for organisation_id in organisation_ids
        for topic in (social_referrals(organisation_id), social_status(organisation_id))
    ]
    return [REFERRALS_SUBMITTED, DEAD_LETTER, *per_organisation]
