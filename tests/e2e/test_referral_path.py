"""A GP referral reaches the right welfare organisation, minimised, exactly once."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from adapters.database import make_engine
from adapters.ledger.tables import audit_log
from contracts import topics
from deploy.devstack.stack import DevStack
from tests.e2e.conftest import (
    GP_LELYSTAD,
    WELFARE_AMSTERDAM,
    WELFARE_LELYSTAD,
    new_bundle,
    referral_id_of,
    resource,
    task_of,
)
from tests.helpers import records_with_key, wait_for_record

pytestmark = pytest.mark.integration

# What the sample bundle carries that must never reach Kafka (and, for the medical part,
# never reach the social side at all).
BSN = "999993653"
DIAGNOSIS = "Depressieve stoornis"
MEDICATION = "Sertraline"
PERSONAL = ["Johanna", "Vries-Bakker", "Kerkstraat", "06-12345678", "1017 GC", "1946-03-02"]


def submit(
    gp: httpx.Client, bundle: dict[str, Any], request_id: str | None = None
) -> httpx.Response:
    return gp.post("", json=bundle, headers={"X-Request-ID": request_id or str(uuid.uuid4())})


def submit_and_await_delivery(gp: httpx.Client, kafka_topics: str) -> str:
    """Submit a fresh referral; return its id once it is on the organisation's topic."""
    referral_id = referral_id_of(task_of(submit(gp, new_bundle())))
    wait_for_record(
        kafka_topics,
        topics.social_referrals("dynamo-amsterdam"),
        lambda r: r.key == referral_id.encode(),
    )
    return referral_id


def case_entry(stack: DevStack, organisation: str, referral_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        path = stack.case_file(organisation)
        if path.exists():
            for line in path.read_text().splitlines():
                if (entry := json.loads(line))["referral_id"] == referral_id:
                    return entry  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"case system {organisation} never filed {referral_id}")


def test_capability_statement_tells_what_is_supported(gp: httpx.Client) -> None:
    reply = gp.get("/metadata")
    assert reply.status_code == 200
    statement = reply.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    rest = statement["rest"][0]
    assert [i["code"] for i in rest["interaction"]] == ["transaction"]
    resources = {r["type"]: r for r in rest["resource"]}
    assert set(resources) == {
        "ServiceRequest",
        "Task",
        "Communication",
        "Subscription",
        "AuditEvent",
    }
    assert {p["name"] for p in resources["Task"]["searchParam"]} == {
        "_id",
        "focus",
        "requester",
        "owner",
        "status",
        "_lastUpdated",
    }
    assert {p["name"] for p in resources["Communication"]["searchParam"]} >= {"based-on"}


def test_a_referral_reaches_the_organisation_minimised_and_its_details_only_by_pull(
    stack: DevStack, gp: httpx.Client, kafka_topics: str
) -> None:
    reply = submit(gp, new_bundle())

    assert reply.status_code == 201, reply.text
    assert reply.json()["type"] == "transaction-response"
    task = task_of(reply)
    assert task["status"] == "requested"
    assert task["meta"]["versionId"] == "1"
    referral_id = referral_id_of(task)
    locations = [e["response"].get("location", "") for e in reply.json()["entry"]]
    assert f"ServiceRequest/{referral_id}/_history/1" in locations
    assert len(reply.json()["entry"]) == len(new_bundle()["entry"]), "one per request entry"
    tracking = [
        e["response"]["outcome"] for e in reply.json()["entry"] if "outcome" in e["response"]
    ]
    assert tracking[0]["issue"][0]["details"]["text"] == f"Task/{task['id']}/_history/1"

    record = wait_for_record(
        kafka_topics,
        topics.social_referrals("dynamo-amsterdam"),
        lambda r: r.key == referral_id.encode(),
    )
    raw = bytes(record.value).decode()
    for forbidden in [BSN, DIAGNOSIS, MEDICATION, "Mevrouw is sinds", *PERSONAL]:
        assert forbidden not in raw, f"{forbidden!r} leaked into the Kafka log"
    event = json.loads(raw)
    assert event["data"]["themes"] == ["loneliness", "grief-loss", "other"]
    assert event["data"]["age_band"] == "75-84"
    assert event["data"]["municipality_code"] == "GM0363"

    fetched = case_entry(stack, "dynamo-amsterdam", referral_id)
    assert fetched["details_status"] == 200
    details = fetched["details"]
    assert details["person"]["display_name"] == "Johanna de Vries-Bakker"
    assert details["person"]["phone"] == ["06-12345678"]
    assert details["person"]["age"] == 80
    assert details["question"].startswith("Mevrouw is sinds het overlijden")
    assert details["themes"] == ["loneliness", "grief-loss", "other"]
    assert "unmapped_reasons" not in details
    assert details["referrer"]["agb"] == "01999001"
    details_text = json.dumps(details)
    for medical in [BSN, DIAGNOSIS, MEDICATION, "P76", "Weinig zingeving sinds pensioen"]:
        assert medical not in details_text, f"{medical!r} crossed to the social domain"


def test_details_are_served_only_to_the_assigned_organisation_and_every_fetch_is_audited(
    stack: DevStack, gp: httpx.Client, social: httpx.Client, kafka_topics: str, database_url: str
) -> None:
    referral_id = submit_and_await_delivery(gp, kafka_topics)
    path = f"/social/v1/referrals/{referral_id}"

    assert social.get(path).status_code == 401
    assert social.get(path, headers={"Authorization": f"Bearer {GP_LELYSTAD}"}).status_code == 401
    foreign = social.get(path, headers={"Authorization": f"Bearer {WELFARE_LELYSTAD}"})
    assert foreign.status_code == 403
    assert foreign.headers["content-type"] == "application/problem+json"
    own = social.get(path, headers={"Authorization": f"Bearer {WELFARE_AMSTERDAM}"})
    assert own.status_code == 200
    assert own.json()["referral_id"] == referral_id

    engine = make_engine(database_url)
    with engine.connect() as connection:
        trail = connection.execute(
            select(audit_log.c.actor, audit_log.c.action)
            .where(audit_log.c.referral_id == uuid.UUID(referral_id))
            .order_by(audit_log.c.id)
        ).all()
    engine.dispose()
    assert ("client:case-welzijn-lelystad", "read-details-refused") in trail
    assert ("client:case-dynamo-amsterdam", "read-details") in trail
    assert trail[0] == ("client:his-amsterdam-centrum", "submitted")


def test_the_gp_withdraws_and_the_organisation_hears_and_details_are_gone(
    stack: DevStack, gp: httpx.Client, social: httpx.Client, kafka_topics: str
) -> None:
    reply = submit(gp, new_bundle())
    task, referral_id = task_of(reply), referral_id_of(task_of(reply))
    wait_for_record(
        kafka_topics,
        topics.social_referrals("dynamo-amsterdam"),
        lambda r: r.key == referral_id.encode(),
    )
    patch = [{"op": "replace", "path": "/status", "value": "cancelled"}]

    withdrawn = gp.patch(
        f"/Task/{task['id']}", json=patch, headers={"Content-Type": "application/json-patch+json"}
    )
    again = gp.put(f"/Task/{task['id']}", json=task | {"status": "cancelled"})

    assert withdrawn.status_code == again.status_code == 200, withdrawn.text
    assert withdrawn.json()["status"] == "cancelled"
    assert withdrawn.json()["meta"]["versionId"] == again.json()["meta"]["versionId"] == "2"
    record = wait_for_record(
        kafka_topics,
        topics.social_referrals("dynamo-amsterdam"),
        lambda r: (
            r.key == referral_id.encode()
            and json.loads(r.value)["type"] == "nl.brug.referral.withdrawn.v1"
        ),
    )
    assert json.loads(record.value)["data"]["withdrawn_by"] == "gp"
    details = social.get(
        f"/social/v1/referrals/{referral_id}",
        headers={"Authorization": f"Bearer {WELFARE_AMSTERDAM}"},
    )
    assert details.status_code == 410
    assert case_entry_withdrawn(stack, referral_id)


def case_entry_withdrawn(stack: DevStack, referral_id: str) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = stack.case_file("dynamo-amsterdam").read_text().splitlines()
        if any(
            (entry := json.loads(line))["referral_id"] == referral_id and entry.get("withdrawn")
            for line in lines
        ):
            return True
        time.sleep(0.2)
    return False


def test_a_gp_may_change_its_task_only_to_withdraw_it(gp: httpx.Client) -> None:
    task = task_of(submit(gp, new_bundle()))
    reply = gp.put(f"/Task/{task['id']}", json=task | {"status": "completed"})
    assert reply.status_code == 422
    assert reply.json()["issue"][0]["expression"] == ["Task.status"]


def test_revoking_the_service_request_withdraws_the_referral(
    gp: httpx.Client, kafka_topics: str
) -> None:
    reply = submit(gp, new_bundle())
    task, referral_id = task_of(reply), referral_id_of(task_of(reply))
    service_request = reply.json()["entry"][0]["response"]["location"].split("/_history")[0]
    assert service_request == f"ServiceRequest/{referral_id}"
    # Routed first: a referral withdrawn before routing never reaches an organisation at
    # all, so there would be nobody to tell.
    wait_for_record(
        kafka_topics,
        topics.social_referrals("dynamo-amsterdam"),
        lambda r: r.key == referral_id.encode(),
    )

    refused = gp.patch(
        f"/{service_request}",
        json=[{"op": "replace", "path": "/status", "value": "completed"}],
        headers={"Content-Type": "application/json-patch+json"},
    )
    revoked = gp.patch(
        f"/{service_request}",
        json=[{"op": "replace", "path": "/status", "value": "revoked"}],
        headers={"Content-Type": "application/json-patch+json"},
    )

    assert refused.status_code == 422
    assert revoked.status_code == 200 and revoked.json()["id"] == task["id"]
    assert gp.get(f"/Task/{task['id']}").json()["status"] == "cancelled"
    wait_for_record(
        kafka_topics,
        topics.social_referrals("dynamo-amsterdam"),
        lambda r: (
            r.key == referral_id.encode()
            and json.loads(r.value)["type"] == "nl.brug.referral.withdrawn.v1"
        ),
    )
    other = gp.patch(
        f"/{service_request}",
        json=[{"op": "replace", "path": "/status", "value": "revoked"}],
        headers={
            "Content-Type": "application/json-patch+json",
            "Authorization": f"Bearer {GP_LELYSTAD}",
        },
    )
    assert other.status_code == 404


def test_a_duplicate_submission_makes_one_referral(gp: httpx.Client, kafka_topics: str) -> None:
    bundle = new_bundle()
    first = submit(gp, bundle)
    second = submit(gp, bundle)  # a new X-Request-ID: a genuine resubmission, not a retry

    assert (first.status_code, second.status_code) == (201, 200)
    assert task_of(first)["id"] == task_of(second)["id"]
    referral_id = referral_id_of(task_of(first))
    topic = topics.social_referrals("dynamo-amsterdam")
    wait_for_record(kafka_topics, topic, lambda r: r.key == referral_id.encode())
    assert len(records_with_key(kafka_topics, topic, referral_id.encode())) == 1


def test_a_retry_with_the_same_request_id_gets_the_same_answer(gp: httpx.Client) -> None:
    bundle, request_id = new_bundle(), str(uuid.uuid4())
    first = submit(gp, bundle, request_id)
    retry = submit(gp, bundle, request_id)
    assert first.status_code == retry.status_code == 201
    assert first.json() == retry.json()

    bundle["entry"][0]["resource"]["note"][0]["text"] = "changed"
    reused = submit(gp, bundle, request_id)
    assert reused.status_code == 409
    assert reused.json()["issue"][0]["code"] == "duplicate"


def test_a_gp_reads_its_own_task_and_not_another_practices(
    stack: DevStack, gp: httpx.Client
) -> None:
    task = task_of(submit(gp, new_bundle()))

    own = gp.get(f"/Task/{task['id']}")
    assert own.status_code == 200
    assert own.json()["id"] == task["id"]
    assert own.json()["meta"]["versionId"] == "1"
    assert own.headers["etag"] == 'W/"1"'
    other = httpx.get(
        f"{stack.fhir_base_url}/Task/{task['id']}",
        headers={"Authorization": f"Bearer {GP_LELYSTAD}"},
    )
    assert other.status_code == 404
    assert other.json()["resourceType"] == "OperationOutcome"


def test_a_service_request_with_contained_patient_and_consent_is_accepted(
    gp: httpx.Client,
) -> None:
    bundle = new_bundle()
    service_request = resource(bundle, "ServiceRequest")
    patient = resource(bundle, "Patient") | {"id": "p1"}
    consent = resource(bundle, "Consent") | {"id": "c1", "patient": {"reference": "#p1"}}
    organisation = resource(bundle, "Organization") | {"id": "o1"}
    service_request |= {
        "contained": [patient, consent, organisation],
        "subject": {"reference": "#p1"},
        "requester": {"reference": "#o1"},
        "reasonReference": [],
    }
    service_request.pop("reasonReference")

    reply = gp.post("/ServiceRequest", json=service_request)

    assert reply.status_code == 201, reply.text
    assert "/fhir/ServiceRequest/" in reply.headers["location"]
    assert reply.json()["issue"][0]["details"]["text"].startswith("Task/")


def test_no_service_writes_patient_data_to_its_logs(
    stack: DevStack, gp: httpx.Client, kafka_topics: str
) -> None:
    submit_and_await_delivery(gp, kafka_topics)
    bad = new_bundle()
    bad["entry"][1]["resource"]["identifier"][0]["value"] = "123456789"  # invalid BSN, refused
    assert submit(gp, bad).status_code == 422

    logs = {path.name: path.read_text() for path in (stack.config.state_dir / "logs").glob("*.log")}
    assert {"fhir_gateway.log", "router.log", "social_gateway.log"} <= set(logs)
    for name, text in logs.items():
        for personal in [BSN, "123456789", DIAGNOSIS, MEDICATION, *PERSONAL]:
            assert personal not in text, f"{personal!r} in {name}"
