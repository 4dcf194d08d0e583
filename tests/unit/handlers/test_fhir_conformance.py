"""What Brug writes to GP systems passes HAPI FHIR's R4 instance validator (offline).

The answers come from the FHIR gateway in-process (TestClient in front, the real PostgreSQL
behind): transaction-responses, a Task and a Task searchset, OperationOutcomes of refused
requests, the CapabilityStatement, a Subscription, its ``$status`` and ``$events`` (with two
events recorded as gp_notify records them). What other
services build is made by the functions they call: the Communications of feedback and
signals, a signal's action Task, and the notification Bundles gp_notify POSTs.

All are written to one folder and validated in one JVM run (its start-up is most of the
cost). Errors fail; warnings and information pass. Not checked offline (reported as such):
the Subscriptions Backport IG's profiles (not in the R4 core package) and Brug's own code
systems (the validator cannot know their codes).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from faststream.kafka import TestKafkaBroker
from sqlalchemy import Engine

from adapters.fhir.resources import action_task_resource, communication_resource
from adapters.fhir.subscriptions import NotificationEvent, notification_bundle
from adapters.ledger.repository import CommunicationRow, ReferralRow
from adapters.ledger.subscriptions import SubscriptionEvent, Subscriptions
from contracts.codes import ReferralStatus
from contracts.events.status import PositiveHealthDimension
from contracts.fhir_systems import BACKPORT_PAYLOAD_CONTENT, REFERRAL_FEEDBACK_TOPIC
from deploy.demo import SAMPLE_GP_CLIENT, sample_bundle
from deploy.devstack.stack import dev_tokens
from services.fhir_gateway.app import create_app
from services.fhir_gateway.settings import GatewaySettings
from tests import hapi_validator
from tests.conftest import free_port

pytestmark = pytest.mark.integration  # the real PostgreSQL

GP = {"Authorization": f"Bearer {dev_tokens()[SAMPLE_GP_CLIENT]}"}
FHIR_JSON = {"Content-Type": "application/fhir+json"}
BASE = "http://127.0.0.1:8080/fhir"  # GatewaySettings' default fhir_base_url
AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def validator() -> Path:
    """Fetched and compiled once per machine (deploy/test.sh warms it)."""
    return hapi_validator.ensure_validator()


@pytest.fixture
async def gateway(handler_database: str) -> AsyncIterator[TestClient]:
    settings = GatewaySettings(
        database_url=handler_database, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}"
    )
    app = create_app(settings)
    async with TestKafkaBroker(app.state.broker):
        with TestClient(app) as client:
            yield client


def _ok(reply: Any, status: int = 200) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    document: dict[str, Any] = reply.json()
    return document


def _two_events(engine: Engine, subscription_id: str, task_id: str, referral_id: str) -> None:
    """As gp_notify leaves it after two notices about the Task."""
    now = datetime.now(UTC)
    with engine.begin() as connection:
        store = Subscriptions(connection)
        store.sent(uuid.UUID(subscription_id), now, activate=True)
        row = store.get(uuid.UUID(subscription_id), "01999001")
        assert row is not None
        for version in (2, 3):
            counted = store.count_event(row.organisation, now)
            store.record_events(
                [
                    SubscriptionEvent(
                        subscription_id=s.subscription_id,
                        event_number=s.events_since_start,
                        referral_id=uuid.UUID(referral_id),
                        resource_type="Task",
                        resource_id=uuid.UUID(task_id),
                        version_id=version,
                        occurred_at=now,
                        delivered_at=None,
                    )
                    for s in counted
                    if str(s.subscription_id) == subscription_id
                ],
                now,
            )


def _gateway_answers(gateway: TestClient, engine: Engine) -> Iterator[tuple[str, dict[str, Any]]]:
    submitted = _ok(gateway.post("/fhir", json=sample_bundle(), headers=GP | FHIR_JSON), 201)
    yield "transaction-response", submitted
    with_task = sample_bundle()
    with_task["entry"].append(
        {
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "resource": {"resourceType": "Task", "status": "requested", "intent": "order"},
            "request": {"method": "POST", "url": "Task"},
        }
    )
    yield (
        "transaction-response-with-task",
        _ok(gateway.post("/fhir", json=with_task, headers=GP | FHIR_JSON), 201),
    )
    yield (
        "transaction-response-repeated",
        _ok(gateway.post("/fhir", json=with_task, headers=GP | FHIR_JSON), 200),
    )
    service_request = next(
        e["response"]["location"].split("/_history")[0]
        for e in submitted["entry"]
        if e["response"].get("location", "").startswith("ServiceRequest/")
    )
    found = _ok(gateway.get("/fhir/Task", params={"focus": service_request}, headers=GP))
    yield "task-searchset", found
    task = found["entry"][0]["resource"]
    task_id = task["id"]
    yield "task", _ok(gateway.get(f"/fhir/Task/{task_id}", headers=GP))
    yield (
        "communication-searchset",
        _ok(gateway.get("/fhir/Communication", params={"based-on": service_request}, headers=GP)),
    )
    yield "capability-statement", _ok(gateway.get("/fhir/metadata"))

    bad_bsn = sample_bundle()
    patient = next(e for e in bad_bsn["entry"] if e["resource"]["resourceType"] == "Patient")
    patient["resource"]["identifier"][0]["value"] = "123456789"
    yield "outcome-422", _ok(gateway.post("/fhir", json=bad_bsn, headers=GP | FHIR_JSON), 422)
    yield "outcome-400", _ok(gateway.get("/fhir/Task", params={"colour": "red"}, headers=GP), 400)
    yield "outcome-401", _ok(gateway.get("/fhir/Task"), 401)
    yield "outcome-404", _ok(gateway.get(f"/fhir/Task/{uuid.uuid4()}", headers=GP), 404)

    subscription = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Feedback on our referrals",
        "criteria": REFERRAL_FEEDBACK_TOPIC,
        "channel": {
            "type": "rest-hook",
            "endpoint": f"http://127.0.0.1:{free_port()}/hook",  # stored, never called here
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": BACKPORT_PAYLOAD_CONTENT, "valueCode": "id-only"}]},
            "header": ["Authorization: Bearer hook-secret"],
        },
    }
    created = _ok(gateway.post("/fhir/Subscription", json=subscription, headers=GP), 201)
    yield "subscription", created
    yield (
        "subscription-status",
        _ok(gateway.get(f"/fhir/Subscription/{created['id']}/$status", headers=GP)),
    )
    _two_events(engine, created["id"], task_id, task["identifier"][0]["value"])
    events = _ok(gateway.get(f"/fhir/Subscription/{created['id']}/$events", headers=GP))
    assert len(events["entry"]) == 3, "the status and two events"
    yield "subscription-events", events
    yield (
        "outcome-400-events",
        _ok(
            gateway.get(
                f"/fhir/Subscription/{created['id']}/$events",
                params={"eventsSinceNumber": "two"},
                headers=GP,
            ),
            400,
        ),
    )


def _row() -> ReferralRow:
    return ReferralRow(
        referral_id=uuid.uuid4(),
        organisation_id="dynamo-amsterdam",
        municipality_code="GM0363",
        status=ReferralStatus.COMPLETED,
        task_id=uuid.uuid4(),
        requester_agb="01999001",
        service_request_system="urn:oid:2.16.840.1.113883.2.4.6.1.01999001",
        service_request_value="WOR-1",
        version=5,
        created_at=AT,
        updated_at=AT,
    )


def _built_answers() -> Iterator[tuple[str, dict[str, Any]]]:
    row = _row()
    dimensions = [d.value for d in PositiveHealthDimension]
    feedback = CommunicationRow(
        communication_id=uuid.uuid4(),
        referral_id=row.referral_id,
        category="feedback",
        sender="dynamo-amsterdam",
        payload={
            "summary": "Joined the Tuesday walking group.",
            "activities": [{"kind": "exercise", "description": "Walking group, Tuesdays"}],
            "positive_health_consent": True,
            "positive_health_before": {
                "measured_on": "2026-09-01T10:00:00+00:00",
                "scores": {d: 4 for d in dimensions},
            },
            "positive_health_after": {
                "measured_on": "2026-11-01T10:00:00+00:00",
                "scores": {d: 7 for d in dimensions},
            },
        },
        sent_at=AT,
    )
    yield "communication-feedback", communication_resource(feedback, row)
    signal = CommunicationRow(
        communication_id=uuid.uuid4(),
        referral_id=row.referral_id,
        category="signal",
        sender="dynamo-amsterdam",
        payload={"kind": "health-concern", "text": "Short of breath", "action_requested": True},
        sent_at=AT,
        action_task_id=uuid.uuid4(),
    )
    yield "communication-signal", communication_resource(signal, row)
    yield "task-action", action_task_resource(signal, row)
    subscription_url = f"{BASE}/Subscription/{uuid.uuid4()}"
    for kind, event in (
        ("handshake", None),
        ("heartbeat", None),
        ("event-notification", NotificationEvent(7, AT, f"{BASE}/Task/{row.task_id}")),
    ):
        yield (
            f"notification-{kind}",
            notification_bundle(
                subscription_url=subscription_url,
                topic=REFERRAL_FEEDBACK_TOPIC,
                status="requested" if kind == "handshake" else "active",
                notification_type=kind,  # type: ignore[arg-type]
                events_since_start=7 if event else 0,
                event=event,
                at=AT,
            ),
        )


def test_every_answer_brug_writes_passes_the_hapi_r4_validator(
    gateway: TestClient, ledger_engine: Engine, validator: Path, tmp_path: Path
) -> None:
    documents = dict(_gateway_answers(gateway, ledger_engine)) | dict(_built_answers())
    for name, document in documents.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(document))

    report = hapi_validator.validate(tmp_path)

    assert set(report) == {f"{name}.json" for name in documents}, "each file validated"
    failures = {
        name: [f"{i.location}: {i.message}" for i in hapi_validator.errors(issues)]
        for name, issues in report.items()
        if hapi_validator.errors(issues)
    }
    assert not failures, json.dumps(failures, indent=1)
    # What the validator could not check offline, it says so: the Backport IG's profiles.
    unchecked = {
        profile
        for issues in report.values()
        for issue in issues
        if (profile := hapi_validator.not_checked_offline(issue))
    }
    assert unchecked <= {
        f"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/{name}"
        for name in (
            "backport-subscription",
            "backport-subscription-status-r4",
            "backport-subscription-notification-r4",
        )
    }
