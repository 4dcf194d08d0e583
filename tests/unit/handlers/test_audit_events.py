"""``GET /fhir/AuditEvent`` in-process (the real PostgreSQL behind): a GP system reads the
accesses to its own referrals as R4 AuditEvents, by entity or by the patient's BSN, never
another practice's; the read is audited; what it cannot answer is a 400 OperationOutcome."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from faststream.kafka import TestKafkaBroker
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import Engine, select

from adapters.ledger.tables import audit_log
from contracts.fhir_systems import BSN as BSN_SYSTEM
from deploy.demo import sample_bundle
from deploy.devstack.stack import dev_tokens
from services.fhir_gateway.app import create_app
from services.fhir_gateway.bsn import is_valid_bsn
from tests.unit.handlers.test_fhir_gateway import (
    FHIR_JSON,
    GP_TOKEN,
    _referral_id,
    _settings,
    _task,
)

pytestmark = pytest.mark.integration  # the real PostgreSQL

OTHER_GP_TOKEN = dev_tokens()["his-lelystad-noord"]


def _fresh_bsn() -> str:
    while True:
        candidate = f"{random.randrange(10**8, 10**9):09d}"  # noqa: S311 (a test value)
        if is_valid_bsn(candidate):
            return candidate


@pytest.fixture
async def gateway(handler_database: str) -> AsyncIterator[TestClient]:
    app = create_app(_settings(handler_database))
    async with TestKafkaBroker(app.state.broker):
        with TestClient(app) as client:
            yield client


def _submitted(gateway: TestClient, bsn: str, person: str) -> tuple[uuid.UUID, str]:
    bundle = sample_bundle(f"WOR-{uuid.uuid4()}")
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            entry["resource"]["identifier"][0]["value"] = bsn
    headers = {"Authorization": f"Bearer {GP_TOKEN}", "Content-Type": FHIR_JSON}
    answer = gateway.post(
        "/fhir", content=json.dumps(bundle), headers=headers | {"X-Brug-Person": person}
    )
    assert answer.status_code == 201, answer.text
    return _referral_id(answer.json()), _task(answer.json()).split("/")[1]


def _search(gateway: TestClient, token: str = GP_TOKEN, **params: str) -> Any:
    return gateway.get(
        "/fhir/AuditEvent", params=params, headers={"Authorization": f"Bearer {token}"}
    )


def test_a_gp_reads_the_accesses_to_its_referral_as_valid_audit_events(
    gateway: TestClient, ledger_engine: Engine
) -> None:
    bsn, person = _fresh_bsn(), f"uzi:{uuid.uuid4().hex[:9]}"
    referral_id, task_id = _submitted(gateway, bsn, person)
    gateway.get(f"/fhir/Task/{task_id}", headers={"Authorization": f"Bearer {GP_TOKEN}"})

    by_entity = _search(gateway, entity=f"ServiceRequest/{referral_id}")
    by_task = _search(gateway, entity=f"Task/{task_id}")
    by_patient = _search(gateway, **{"patient:identifier": f"{BSN_SYSTEM}|{bsn}"})

    assert by_entity.status_code == 200, by_entity.text
    bundle = Bundle.model_validate(by_entity.json())
    assert bundle.type == "searchset"
    events = [e["resource"] for e in by_entity.json()["entry"]]
    for event in events:
        AuditEvent.model_validate(event)  # valid R4 (fhir.resources, not Brug's own code)
    actions = [e["subtype"][0]["code"] for e in events]
    assert actions[:2] == ["submitted", "read-task"]
    submitted = events[0]
    assert (submitted["action"], submitted["outcome"]) == ("C", "0")
    assert submitted["agent"][0]["name"] == person
    assert submitted["purposeOfEvent"][0]["coding"][0]["code"] == "care-referral"
    assert submitted["entity"][0]["what"]["reference"] == f"ServiceRequest/{referral_id}"
    assert bsn not in by_entity.text, "neither the BSN nor anything derived from it"
    ids = [e["resource"]["id"] for e in by_entity.json()["entry"]]
    assert [e["resource"]["id"] for e in by_task.json()["entry"]][: len(ids)] == ids
    assert [e["resource"]["id"] for e in by_patient.json()["entry"]][: len(ids)] == ids
    with ledger_engine.connect() as connection:
        reads = connection.execute(
            select(audit_log.c.purpose).where(
                (audit_log.c.referral_id == referral_id)
                & (audit_log.c.action == "read-audit-events")
            )
        ).all()
    assert [r.purpose for r in reads] == ["privacy-officer"] * 3, "each read is audited"


def test_another_practice_finds_nothing_and_its_search_is_still_audited(
    gateway: TestClient, ledger_engine: Engine
) -> None:
    bsn = _fresh_bsn()
    referral_id, _ = _submitted(gateway, bsn, "uzi:x")

    foreign = _search(gateway, OTHER_GP_TOKEN, entity=f"ServiceRequest/{referral_id}")
    by_patient = _search(gateway, OTHER_GP_TOKEN, patient=f"{BSN_SYSTEM}|{bsn}")

    assert foreign.status_code == 200
    assert foreign.json()["total"] == 0 and "entry" not in foreign.json()
    assert by_patient.json()["total"] == 0
    with ledger_engine.connect() as connection:
        audited = connection.execute(
            select(audit_log.c.actor).where(
                (audit_log.c.action == "read-audit-events") & audit_log.c.referral_id.is_(None)
            )
        ).all()
    assert "client:his-lelystad-noord" in {a.actor for a in audited}


@pytest.mark.parametrize(
    ("params", "expression"),
    [
        ({}, "entity"),
        ({"entity": "Patient/123"}, "entity"),
        ({"entity": "ServiceRequest/not-an-id"}, "entity"),
        ({"patient": f"{BSN_SYSTEM}|123456789"}, "patient"),
        ({"patient": "urn:other|999993653"}, "patient"),
        ({"entity": f"ServiceRequest/{uuid.uuid4()}", "date": "2026"}, "date"),
        ({"entity": f"ServiceRequest/{uuid.uuid4()}", "_count": "many"}, "_count"),
    ],
)
def test_what_cannot_be_answered_is_a_400_operation_outcome(
    gateway: TestClient, params: dict[str, str], expression: str
) -> None:
    answer = _search(gateway, **params)
    assert answer.status_code == 400, answer.text
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == [expression]


def test_the_capability_statement_advertises_audit_event_search(gateway: TestClient) -> None:
    statement = gateway.get("/fhir/metadata").json()
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert {p["name"] for p in resources["AuditEvent"]["searchParam"]} == {"entity", "patient"}
    assert resources["AuditEvent"]["interaction"] == [{"code": "search-type"}]
