"""The ledger in a real PostgreSQL, through the migrations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select

from adapters.database import current_revision, database_health, head_revision, make_engine
from adapters.ledger.repository import Ledger
from adapters.ledger.tables import audit_log, metadata
from contracts.codes import ReferralStatus

pytestmark = pytest.mark.integration


def test_migrations_bring_the_schema_to_head(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
    assert database_health(database_url) == (True, f"ok (schema {head_revision()})")


def test_migrations_produce_exactly_the_tables_the_code_uses(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_a_referral_its_status_history_and_audit_trail_round_trip(database_url: str) -> None:
    referral_id = uuid.uuid4()
    submitted_at = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            ledger = Ledger(connection)
            ledger.add_referral(referral_id, "GM0363", submitted_at)
            ledger.change_status(
                referral_id,
                ReferralStatus.RECEIVED,
                source="router",
                at=submitted_at + timedelta(seconds=1),
                organisation_id="dynamo-amsterdam",
            )
            ledger.audit(
                actor="org:dynamo-amsterdam",
                action="read-details",
                referral_id=referral_id,
                detail={"endpoint": "/social/v1/referrals"},
            )
        with engine.connect() as connection:
            ledger = Ledger(connection)
            row = ledger.referral(referral_id)
            history = ledger.history(referral_id)
            audit = connection.execute(
                select(audit_log.c.actor, audit_log.c.action).where(
                    audit_log.c.referral_id == referral_id
                )
            ).all()
    finally:
        engine.dispose()

    assert row is not None
    assert (row.status, row.organisation_id, row.municipality_code) == (
        ReferralStatus.RECEIVED,
        "dynamo-amsterdam",
        "GM0363",
    )
    assert [(h.status, h.source) for h in history] == [
        (ReferralStatus.REQUESTED, "gp"),
        (ReferralStatus.RECEIVED, "router"),
    ]
    assert audit == [("org:dynamo-amsterdam", "read-details")]
