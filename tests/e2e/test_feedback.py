"""The welfare case system answers: statuses reach the GP's Task under the state machine;
what cannot be applied is answered with a problem event."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.events.status import (
    DeclineReason,
    ReferralStatusProblem,
    ReferralStatusReported,
    WelfareStatus,
)
from tests.e2e.conftest import new_bundle, referral_id_of, task_of
from tests.helpers import produce, wait_for_record

pytestmark = pytest.mark.integration

ORGANISATION = "dynamo-amsterdam"


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
