"""The routing decision, free of I/O: submitted referral + directory → created referral."""

from __future__ import annotations

from datetime import datetime

from adapters.runtime import Unprocessable
from contracts.directory import WelfareDirectory
from contracts.events import ReferralCreated, ReferralSubmitted


def route(
    submitted: ReferralSubmitted,
    directory: WelfareDirectory,
    *,
    details_base_url: str,
    now: datetime,
) -> ReferralCreated:
    organisation = directory.organisation_for(submitted.municipality_code)
    if organisation is None:
        raise Unprocessable(
            "unroutable",
            f"no welfare organisation serves municipality {submitted.municipality_code} "
            f"(directory version {directory.version})",
        )
    return ReferralCreated(
        referral_id=submitted.referral_id,
        organisation_id=organisation.id,
        municipality_code=submitted.municipality_code,
        themes=submitted.themes,
        age_band=submitted.age_band,
        urgency=submitted.urgency,
        submitted_at=submitted.submitted_at,
        routed_at=now,
        details_url=f"{details_base_url.rstrip('/')}/{submitted.referral_id}",
    )
