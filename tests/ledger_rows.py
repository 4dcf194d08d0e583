"""Ledger rows that several tests start from, written as the services would leave them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from adapters.ledger.repository import Ledger, NewReferral, ReferralRow
from contracts.codes import ReferralStatus


def accepted_referral(
    engine: Engine,
    *,
    organisation: str = "dynamo-amsterdam",
    client_id: str = "his-amsterdam-centrum",
    requester_agb: str = "01999001",
) -> ReferralRow:
    """A referral of the GP practice, routed to ``organisation``, which has accepted it
    (welfare sequence 1)."""
    now = datetime.now(UTC)
    new = NewReferral(
        referral_id=uuid.uuid4(),
        task_id=uuid.uuid4(),
        client_id=client_id,
        requester_agb=requester_agb,
        service_request_system="urn:test",
        service_request_value=str(uuid.uuid4()),
        municipality_code="GM0363",
        themes=["loneliness"],
        age_band="75-84",
        urgency="routine",
        submitted_at=now,
        details={},
        retain_until=now + timedelta(days=1),
    )
    with engine.begin() as connection:
        ledger = Ledger(connection)
        ledger.record_intake(new)
        ledger.assign(new.referral_id, organisation, at=now)
        ledger.record_welfare_status(
            new.referral_id,
            welfare_status="accepted",
            sequence=1,
            task_status=ReferralStatus.ACCEPTED,
            business_status="accepted-by-welfare",
            reason=None,
            source=f"welfare:{organisation}",
            at=now,
        )
        row = ledger.referral(new.referral_id)
    assert row is not None
    return row
