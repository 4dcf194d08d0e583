"""The ledger in a real PostgreSQL, through the migrations."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select

from adapters.database import current_revision, database_health, head_revision, make_engine
from adapters.ledger.repository import Ledger, NewReferral
from adapters.ledger.tables import audit_log, metadata
from contracts.codes import ReferralStatus
from tests.conftest import database_of_its_own

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def database_url(database_url: str) -> Iterator[str]:
    """A ledger of its own: the change notices its rows queue name GP systems the shared
    broker has no topic for, and the running stacks' relays must not meet them."""
    with database_of_its_own(database_url, "brug_ledger_test") as url:
        yield url


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


def _intake(referral_id: uuid.UUID, value: str, retain_until: datetime) -> NewReferral:
    now = datetime.now(UTC)
    return NewReferral(
        referral_id=referral_id,
        task_id=uuid.uuid4(),
        client_id="his-test",
        requester_agb="01999009",
        service_request_system="urn:test",
        service_request_value=value,
        municipality_code="GM0363",
        themes=["loneliness"],
        age_band="75-84",
        urgency="routine",
        submitted_at=now,
        details={"person": {"display_name": "Test Persoon"}},
        retain_until=retain_until,
    )


def test_personal_details_past_retention_are_erased_and_the_ids_stay(database_url: str) -> None:
    expired, kept = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            ledger = Ledger(connection)
            ledger.record_intake(_intake(expired, f"old-{expired}", now - timedelta(days=1)))
            ledger.record_intake(_intake(kept, f"new-{kept}", now + timedelta(days=30)))
        with engine.begin() as connection:
            erased = Ledger(connection).purge_expired_details(now)
        with engine.connect() as connection:
            ledger = Ledger(connection)
            assert ledger.details(expired) is None
            assert ledger.details(kept) == {"person": {"display_name": "Test Persoon"}}
            assert ledger.referral(expired) is not None, "the referral's ids and history stay"
    finally:
        engine.dispose()
    assert erased >= 1


def test_one_service_request_identifier_per_practice_is_enforced_by_the_database(
    database_url: str,
) -> None:
    from sqlalchemy.exc import IntegrityError

    value = f"dup-{uuid.uuid4()}"
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            Ledger(connection).record_intake(_intake(uuid.uuid4(), value, datetime.now(UTC)))
        with pytest.raises(IntegrityError), engine.begin() as connection:
            Ledger(connection).record_intake(_intake(uuid.uuid4(), value, datetime.now(UTC)))
    finally:
        engine.dispose()
