"""The audit trail at the HTTP edges, in-process (the real PostgreSQL behind): the intake
keeps the BSN's pseudonym (never the BSN) and the audit rows copy it; the person a caller
names in ``X-Brug-Person`` is recorded; failed authentications and refused reads are
audited as ``refused``, without the token."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from faststream.kafka import TestKafkaBroker
from sqlalchemy import Engine, select, text

from adapters.ledger.tables import audit_log
from adapters.pseudonyms import DEV_PSEUDONYM_KEY, bsn_pseudonym
from deploy.demo import sample_bundle
from services.fhir_gateway.app import create_app
from tests.unit.handlers.support import referral
from tests.unit.handlers.test_fhir_gateway import FHIR_JSON, GP_TOKEN, _referral_id, _settings
from tests.unit.handlers.test_social_gateway import OTHER, _gateway, routed_referral

pytestmark = pytest.mark.integration  # the real PostgreSQL

SAMPLE_BSN = "999993653"  # deploy/samples/wor-referral-bundle.json


@pytest.fixture
async def gateway(handler_database: str) -> AsyncIterator[TestClient]:
    app = create_app(_settings(handler_database))
    async with TestKafkaBroker(app.state.broker):
        with TestClient(app) as client:
            yield client


@pytest.fixture
async def social(handler_database: str) -> AsyncIterator[TestClient]:
    async with _gateway(handler_database) as client:
        yield client


def _rows_of(engine: Engine, person: str) -> list[Any]:
    with engine.connect() as connection:
        return connection.execute(
            select(audit_log).where(audit_log.c.person == person).order_by(audit_log.c.id)
        ).all()


def test_the_intake_keeps_the_pseudonym_and_the_audit_row_copies_it_with_the_person(
    gateway: TestClient, ledger_engine: Engine
) -> None:
    person = f"uzi:{uuid.uuid4().hex[:9]}"
    headers = {"Authorization": f"Bearer {GP_TOKEN}", "Content-Type": FHIR_JSON}
    answer = gateway.post(
        "/fhir", content=json.dumps(sample_bundle()), headers=headers | {"X-Brug-Person": person}
    )

    assert answer.status_code == 201, answer.text
    referral_id = _referral_id(answer.json())
    pseudonym = bsn_pseudonym(SAMPLE_BSN, DEV_PSEUDONYM_KEY)
    with ledger_engine.connect() as connection:
        kept = connection.execute(
            text("SELECT patient_pseudonym FROM referrals WHERE referral_id = :id"),
            {"id": referral_id},
        ).scalar()
        everything = connection.execute(
            text("SELECT r::text FROM referrals r WHERE referral_id = :id"), {"id": referral_id}
        ).scalar()
    assert kept == pseudonym
    assert SAMPLE_BSN not in (everything or "")
    [row] = _rows_of(ledger_engine, person)
    assert (row.action, row.referral_id, row.patient_pseudonym) == (
        "submitted",
        referral_id,
        pseudonym,
    )
    assert (row.purpose, row.result, row.actor) == (
        "care-referral",
        "allowed",
        f"client:{referral(ledger_engine, referral_id).client_id}",
    )


def test_a_failed_authentication_at_the_fhir_edge_is_audited_without_the_token(
    gateway: TestClient, ledger_engine: Engine
) -> None:
    person = f"uzi:{uuid.uuid4().hex[:9]}"
    secret = f"not-a-token-{uuid.uuid4().hex}"
    named = {"X-Brug-Person": person}
    posted = gateway.post(
        "/fhir",
        content=json.dumps(sample_bundle()),
        headers=named | {"Authorization": f"Bearer {secret}", "Content-Type": FHIR_JSON},
    )
    read = gateway.get(f"/fhir/Task/{uuid.uuid4()}", headers=named)

    assert (posted.status_code, read.status_code) == (401, 401)
    rows = _rows_of(ledger_engine, person)
    assert [(r.action, r.result, r.purpose, r.actor) for r in rows] == [
        ("authentication-failed", "refused", "security", "unauthenticated")
    ] * 2
    assert rows[0].detail == {"edge": "fhir", "method": "POST", "route": "/fhir"}
    assert rows[1].detail == {"edge": "fhir", "method": "GET", "route": "/fhir/Task/{task_id}"}
    assert secret not in json.dumps([r.detail for r in rows])


def test_another_practices_task_read_is_audited_as_refused(
    gateway: TestClient, ledger_engine: Engine
) -> None:
    person = f"uzi:{uuid.uuid4().hex[:9]}"
    task_id = uuid.uuid4()
    answer = gateway.get(
        f"/fhir/Task/{task_id}",
        headers={"Authorization": f"Bearer {GP_TOKEN}", "X-Brug-Person": person},
    )

    assert answer.status_code == 404
    [row] = _rows_of(ledger_engine, person)
    assert (row.action, row.result, row.detail["resource"]) == (
        "read-task-refused",
        "refused",
        f"Task/{task_id}",
    )


def test_the_social_edge_audits_failed_authentications_and_refused_status_reads(
    social: TestClient, ledger_engine: Engine
) -> None:
    person = f"coach:{uuid.uuid4().hex[:9]}"
    referral_id = routed_referral(ledger_engine)
    named = {"X-Brug-Person": person}

    unauthenticated = social.get(f"/social/v1/referrals/{referral_id}", headers=named)
    details = social.get(f"/social/v1/referrals/{referral_id}", headers=OTHER | named)
    status = social.get(f"/social/v1/referrals/{referral_id}/status", headers=OTHER | named)

    assert [a.status_code for a in (unauthenticated, details, status)] == [401, 403, 403]
    rows = _rows_of(ledger_engine, person)
    assert [(r.action, r.result) for r in rows] == [
        ("authentication-failed", "refused"),
        ("read-details-refused", "refused"),
        ("read-status-refused", "refused"),
    ]
    assert rows[0].detail["route"] == "/social/v1/referrals/{referral_id}"
    assert rows[2].referral_id == referral_id and rows[2].detail["status"] == 403
