"""The welfare case system answers: statuses reach the GP's Task under the state machine;
what cannot be applied is answered with a problem event."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.events import GpResourceChanged, ReferralOverdue
from contracts.events.status import (
    DeclineReason,
    FeedbackReceivedByGp,
    PositiveHealthDimension,
    ReferralStatusProblem,
    ReferralStatusReported,
    WelfareStatus,
)
from tests.e2e.conftest import (
    GP_LELYSTAD,
    WELFARE_AMSTERDAM,
    WELFARE_LELYSTAD,
    new_bundle,
    referral_id_of,
    resource,
    task_of,
)
from tests.helpers import produce, records_with_key, wait_for_record

pytestmark = pytest.mark.integration

ORGANISATION = "dynamo-amsterdam"
GP_CLIENT = "his-amsterdam-centrum"
GP_AGB = "01999001"


def _report(
    kafka_topics: str,
    referral_id: str,
    status: WelfareStatus,
    sequence: int,
    sender: str = ORGANISATION,
    **fields: Any,
) -> CloudEvent[ReferralStatusReported]:
    event = CloudEvent[ReferralStatusReported].wrap(
        ReferralStatusReported(
            referral_id=uuid.UUID(referral_id),
            organisation_id=sender,
            status=status,
            sequence=sequence,
            occurred_at=datetime.now(UTC),
            **fields,
        ),
        service=f"case-system-{sender}",
    )
    produce(kafka_topics, topics.social_status(sender), event.to_json_bytes(), referral_id.encode())
    return event


def _task_when(gp: httpx.Client, task_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        task = gp.get(f"/Task/{task_id}").json()
        if task["status"] == status:
            return task  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"Task/{task_id} never became {status}")


def _submitted_and_routed(gp: httpx.Client, kafka_topics: str) -> tuple[str, str]:
    task = task_of(gp.post("", json=new_bundle()))
    referral_id = referral_id_of(task)
    wait_for_record(
        kafka_topics, topics.social_referrals(ORGANISATION), lambda r: r.key == referral_id.encode()
    )
    return referral_id, task["id"]


def _problem(kafka_topics: str, sender: str, rejected: str) -> ReferralStatusProblem:
    record = wait_for_record(
        kafka_topics,
        topics.social_problems(sender),
        lambda r: (
            CloudEvent[ReferralStatusProblem].model_validate_json(r.value).data.rejected_event_id
            == rejected
        ),
    )
    return CloudEvent[ReferralStatusProblem].model_validate_json(record.value).data


def test_statuses_from_the_welfare_side_move_the_gps_task(
    gp: httpx.Client, kafka_topics: str
) -> None:
    referral_id, task_id = _submitted_and_routed(gp, kafka_topics)

    _report(kafka_topics, referral_id, WelfareStatus.RECEIVED, 1)
    _report(kafka_topics, referral_id, WelfareStatus.ACCEPTED, 2)
    _report(kafka_topics, referral_id, WelfareStatus.ACCEPTED, 2)  # a repeat: harmless
    task = _task_when(gp, task_id, "accepted")
    assert task["businessStatus"]["coding"][0]["code"] == "accepted-by-welfare"
    assert task["meta"]["versionId"] == "3"

    illegal = _report(kafka_topics, referral_id, WelfareStatus.RECEIVED, 3)
    problem = _problem(kafka_topics, ORGANISATION, illegal.id)
    assert problem.problem == "illegal-transition"
    assert gp.get(f"/Task/{task_id}").json()["status"] == "accepted"


def test_a_decline_reaches_the_gp_with_a_readable_reason(
    gp: httpx.Client, kafka_topics: str
) -> None:
    referral_id, task_id = _submitted_and_routed(gp, kafka_topics)
    _report(
        kafka_topics,
        referral_id,
        WelfareStatus.DECLINED,
        1,
        decline_reason=DeclineReason.NO_CAPACITY,
    )
    task = _task_when(gp, task_id, "rejected")
    assert task["statusReason"]["text"] == "Declined: the welfare organisation has no capacity"


def test_a_status_from_another_organisation_is_refused(gp: httpx.Client, kafka_topics: str) -> None:
    referral_id, task_id = _submitted_and_routed(gp, kafka_topics)
    foreign = _report(
        kafka_topics, referral_id, WelfareStatus.ACCEPTED, 1, sender="welzijn-lelystad"
    )
    assert _problem(kafka_topics, "welzijn-lelystad", foreign.id).problem == "foreign-organisation"
    assert gp.get(f"/Task/{task_id}").json()["status"] == "requested"


# -- the closed loop, as a case system without Kafka and a GP system would drive it ------

OUTCOME = {
    "summary": "Mevrouw gaat elke dinsdag naar de wandelgroep en voelt zich minder alleen.",
    "activities": [
        {"kind": "exercise", "description": "Wandelgroep Oost, dinsdagochtend"},
        {"kind": "buddy", "description": "Maatje via het Vrijwilligerspunt"},
    ],
    "positive_health_consent": True,
    "positive_health_before": {
        "measured_on": "2026-09-01T10:00:00+00:00",
        "scores": {d.value: 4 for d in PositiveHealthDimension},
    },
    "positive_health_after": {
        "measured_on": "2026-11-20T10:00:00+00:00",
        "scores": {d.value: 7 for d in PositiveHealthDimension},
    },
}


def _post_status(
    social: httpx.Client, referral_id: str, status: str, sequence: int, **fields: Any
) -> httpx.Response:
    body = {"status": status, "sequence": sequence, "occurred_at": datetime.now(UTC).isoformat()}
    return social.post(f"/social/v1/referrals/{referral_id}/status", json=body | fields)


@pytest.fixture
def welfare(social: httpx.Client) -> httpx.Client:
    """Dynamo Amsterdam's case system, over HTTPS."""
    social.headers["Authorization"] = f"Bearer {WELFARE_AMSTERDAM}"
    return social


def _changes(
    kafka_topics: str, referral_id: str, complete: Callable[[set[str]], bool]
) -> list[GpResourceChanged]:
    """The id-only change notices the GP system on the bus receives for one referral, once
    ``complete`` holds for the resource types seen."""
    deadline = time.monotonic() + 30
    while True:
        values = records_with_key(
            kafka_topics, topics.gp_changes(GP_CLIENT), referral_id.encode(), settle=0.5
        )
        notices = [CloudEvent[GpResourceChanged].model_validate_json(v).data for v in values]
        if complete({n.resource_type for n in notices}) or time.monotonic() > deadline:
            return notices


def test_the_closed_loop_from_referral_to_feedback_in_the_gps_fhir_search(
    gp: httpx.Client, welfare: httpx.Client, kafka_topics: str
) -> None:
    referral_id, task_id = _submitted_and_routed(gp, kafka_topics)

    assert _post_status(welfare, referral_id, "received", 1).status_code == 202
    intake = _post_status(welfare, referral_id, "accepted", 2, business_status="intake-scheduled")
    assert intake.status_code == 202
    assert _task_when(gp, task_id, "accepted")["businessStatus"]["coding"][0]["code"] == (
        "intake-scheduled"
    )
    assert _post_status(welfare, referral_id, "first-contact", 3).status_code == 202
    done = _post_status(welfare, referral_id, "completed", 4, outcome=OUTCOME)
    assert done.status_code == 202, done.text
    _task_when(gp, task_id, "completed")

    # Pull: the GP system finds its completed Task and the feedback through FHIR search.
    found = gp.get(
        "/Task", params={"focus": f"ServiceRequest/{referral_id}", "status": "completed"}
    )
    assert found.status_code == 200 and found.json()["total"] == 1
    task = found.json()["entry"][0]["resource"]
    assert task["meta"]["versionId"] == "5"
    summary, *linked, feedback_ref = task["output"]
    assert summary["valueString"] == OUTCOME["summary"]
    assert [o["valueCodeableConcept"]["text"] for o in linked] == [
        a["description"] for a in OUTCOME["activities"]
    ]
    communications = gp.get("/Communication", params={"based-on": f"ServiceRequest/{referral_id}"})
    (entry,) = communications.json()["entry"]
    feedback = entry["resource"]
    assert feedback_ref["valueReference"]["reference"] == f"Communication/{feedback['id']}"
    assert feedback["payload"][0]["contentString"] == OUTCOME["summary"]
    after = next(o for o in feedback["contained"] if o["id"] == "positive-health-after")
    assert [c["valueInteger"] for c in after["component"]] == [7] * 6

    # Kafka: id-only notices in order (quick successive changes of one Task may be announced
    # once, at the newest version), the last Task notice at version 5, then the feedback.
    notices = _changes(kafka_topics, referral_id, lambda found: "Communication" in found)
    task_versions = [n.version_id for n in notices if n.resource_type == "Task"]
    assert task_versions == sorted(task_versions) and task_versions[-1] == 5
    assert [n.resource_id for n in notices if n.resource_type == "Communication"] == [
        uuid.UUID(feedback["id"])
    ]
    assert notices[-1].resource_type == "Communication"

    # Receipts: the organisation learns that the GP system has the feedback.
    receipt = wait_for_record(
        kafka_topics,
        topics.social_referrals(ORGANISATION),
        lambda r: (
            r.key == referral_id.encode()
            and b"received-by-gp" in r.value
            and f"Communication/{feedback['id']}".encode() in r.value
        ),
    )
    assert CloudEvent[FeedbackReceivedByGp].model_validate_json(receipt.value).data.channel == (
        "pull"
    )


def test_the_case_system_hears_at_once_what_cannot_be_applied(
    gp: httpx.Client, welfare: httpx.Client, kafka_topics: str
) -> None:
    referral_id, task_id = _submitted_and_routed(gp, kafka_topics)
    assert _post_status(welfare, referral_id, "accepted", 1).status_code == 202
    _task_when(gp, task_id, "accepted")

    illegal = _post_status(welfare, referral_id, "received", 2)
    assert illegal.status_code == 409
    assert illegal.headers["content-type"] == "application/problem+json"
    assert illegal.json()["detail"].startswith("illegal-transition")
    unfitting = _post_status(welfare, referral_id, "in-progress", 2, business_status="on-hold")
    assert (
        unfitting.status_code == 409 and "unfitting-business-status" in unfitting.json()["detail"]
    )
    no_outcome = _post_status(welfare, referral_id, "completed", 2)
    assert no_outcome.status_code == 422
    repeat = _post_status(welfare, referral_id, "accepted", 1)
    assert repeat.status_code == 202 and repeat.json()["duplicate"] is True
    applied = welfare.get(f"/social/v1/referrals/{referral_id}/status").json()
    assert (applied["status"], applied["sequence"], applied["posted_sequence"]) == (
        "accepted",
        1,
        1,
    )

    welfare.headers["Authorization"] = f"Bearer {WELFARE_LELYSTAD}"
    foreign = _post_status(welfare, referral_id, "in-progress", 2)
    assert foreign.status_code == 403
    assert welfare.get(f"/social/v1/referrals/{referral_id}/status").status_code == 403
    assert gp.get(f"/Task/{task_id}").json()["meta"]["versionId"] == "2"


def test_after_the_gp_withdraws_the_welfare_side_can_no_longer_move_the_referral(
    gp: httpx.Client, welfare: httpx.Client, kafka_topics: str
) -> None:
    referral_id, task_id = _submitted_and_routed(gp, kafka_topics)
    assert _post_status(welfare, referral_id, "accepted", 1).status_code == 202
    _task_when(gp, task_id, "accepted")

    withdrawn = gp.patch(
        f"/Task/{task_id}",
        json=[{"op": "replace", "path": "/status", "value": "cancelled"}],
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert withdrawn.status_code == 200
    wait_for_record(
        kafka_topics,
        topics.social_referrals(ORGANISATION),
        lambda r: r.key == referral_id.encode() and b"referral.withdrawn" in r.value,
    )
    assert welfare.get(f"/social/v1/referrals/{referral_id}").status_code == 410
    assert _post_status(welfare, referral_id, "first-contact", 2).status_code == 410

    # On the bus, the same event is refused with a problem event saying why.
    late = _report(kafka_topics, referral_id, WelfareStatus.FIRST_CONTACT, 2)
    assert _problem(kafka_topics, ORGANISATION, late.id).problem == "referral-ended"
    assert gp.get(f"/Task/{task_id}").json()["status"] == "cancelled"


def test_a_signal_from_the_welfare_side_reaches_the_gp_as_communication_and_task(
    gp: httpx.Client, welfare: httpx.Client, kafka_topics: str
) -> None:
    referral_id, _ = _submitted_and_routed(gp, kafka_topics)
    signal = {
        "signal_id": str(uuid.uuid4()),
        "kind": "health-concern",
        "text": "Tijdens de wandeling erg kortademig; graag beoordeling door de huisarts.",
        "action_requested": True,
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    for _ in range(2):  # a repeat is harmless
        sent = welfare.post(f"/social/v1/referrals/{referral_id}/signals", json=signal)
        assert sent.status_code == 202, sent.text

    notices = _changes(kafka_topics, referral_id, lambda found: {"Task", "Communication"} <= found)
    communication_id = next(n.resource_id for n in notices if n.resource_type == "Communication")
    found = gp.get("/Communication", params={"based-on": referral_id, "category": "wor-signal"})
    assert found.json()["total"] == 1
    communication = found.json()["entry"][0]["resource"]
    assert communication["id"] == str(communication_id)
    assert communication["payload"][0]["contentString"] == signal["text"]
    action_task_id = next(
        n.resource_id
        for n in notices
        if n.resource_type == "Task" and n.resource_id != uuid.UUID(_task_id(gp, referral_id))
    )
    action = gp.get(f"/Task/{action_task_id}")
    assert action.status_code == 200
    assert action.json()["focus"]["reference"] == f"Communication/{communication_id}"
    assert action.json()["owner"]["identifier"]["value"] == GP_AGB

    # Another practice sees neither.
    other = gp.get(
        f"/Communication/{communication_id}", headers={"Authorization": f"Bearer {GP_LELYSTAD}"}
    )
    assert other.status_code == 404


def _task_id(gp: httpx.Client, referral_id: str) -> str:
    return str(gp.get("/Task", params={"focus": referral_id}).json()["entry"][0]["resource"]["id"])


def test_task_search_pages_and_stays_within_the_practice(
    gp: httpx.Client, kafka_topics: str
) -> None:
    since = datetime.now(UTC).isoformat()
    for _ in range(3):
        _submitted_and_routed(gp, kafka_topics)
    first = gp.get("/Task", params={"_lastUpdated": f"ge{since}", "_count": "2"}).json()
    assert first["total"] >= 3 and len(first["entry"]) == 2
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = gp.get(next_url).json()
    seen = {e["resource"]["id"] for e in first["entry"] + second["entry"]}
    assert len(seen) == len(first["entry"]) + len(second["entry"])

    lelystad = gp.get(
        "/Task",
        params={"_lastUpdated": f"ge{since}"},
        headers={"Authorization": f"Bearer {GP_LELYSTAD}"},
    )
    assert lelystad.status_code == 200 and lelystad.json()["total"] == 0
    refused = gp.get("/Task", params={"patient": "Patient/1"})
    assert refused.status_code == 400
    assert refused.json()["resourceType"] == "OperationOutcome"


def test_an_overdue_timer_fires_for_operators_and_shows_on_the_gps_task(
    gp: httpx.Client, kafka_topics: str
) -> None:
    """Buurtwerk Dordrecht's e2e service levels are 0 working days: overdue at once."""
    bundle = new_bundle()
    resource(bundle, "Patient")["address"] = [
        {"use": "home", "line": ["Voorstraat 1"], "postalCode": "3311 AB", "city": "Dordrecht"}
    ]
    task = task_of(gp.post("", json=bundle))
    referral_id = referral_id_of(task)
    record = wait_for_record(kafka_topics, topics.OVERDUE, lambda r: r.key == referral_id.encode())
    overdue = CloudEvent[ReferralOverdue].model_validate_json(record.value).data
    assert (overdue.organisation_id, overdue.timer) == ("buurtwerk-dordrecht", "received")
    deadline = time.monotonic() + 30
    while "note" not in (shown := gp.get(f"/Task/{task['id']}").json()):
        assert time.monotonic() < deadline, "the Task never showed the missed service level"
        time.sleep(0.2)
    assert "did not confirm receipt" in shown["note"][0]["text"]
