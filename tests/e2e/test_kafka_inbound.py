"""GP systems that live on Kafka: the same Bundle on their inbound topic gets the same
processing, the same Task, and the answer on their outcomes topic."""

from __future__ import annotations

import json
import uuid

import pytest

from contracts import topics
from deploy.devstack.stack import DevStack
from tests.e2e.conftest import (
    GP_AMSTERDAM,
    find_task,
    new_bundle,
    referral_id_of,
    resource,
    service_request_of,
)
from tests.helpers import produce, wait_for_record

pytestmark = pytest.mark.integration

CLIENT = "his-amsterdam-centrum"


def _answer(kafka_topics: str, key: bytes) -> tuple[int, dict[str, object]]:
    record = wait_for_record(kafka_topics, topics.gp_outcomes(CLIENT), lambda r: r.key == key)
    headers = dict(record.headers)
    return int(headers["brug-status"]), json.loads(record.value)


def test_a_bundle_on_the_inbound_topic_becomes_a_referral_with_a_task(
    stack: DevStack, kafka_topics: str
) -> None:
    key = str(uuid.uuid4()).encode()
    produce(kafka_topics, topics.gp_referrals(CLIENT), json.dumps(new_bundle()).encode(), key)

    status, answer = _answer(kafka_topics, key)
    assert status == 201
    assert answer["type"] == "transaction-response"
    service_request = service_request_of(answer)
    task = find_task(stack.fhir_base_url, f"Bearer {GP_AMSTERDAM}", service_request)
    referral_id = referral_id_of(task)
    wait_for_record(
        kafka_topics,
        topics.social_referrals("dynamo-amsterdam"),
        lambda r: r.key == referral_id.encode(),
    )


def test_a_bad_bundle_on_the_inbound_topic_is_answered_with_an_operation_outcome(
    stack: DevStack, kafka_topics: str
) -> None:
    bundle = new_bundle()
    resource(bundle, "Consent")["status"] = "rejected"
    key = str(uuid.uuid4()).encode()
    produce(kafka_topics, topics.gp_referrals(CLIENT), json.dumps(bundle).encode(), key)

    status, answer = _answer(kafka_topics, key)
    assert status == 422
    assert answer["resourceType"] == "OperationOutcome"
    assert answer["issue"][0]["code"] == "business-rule"  # type: ignore[index]
