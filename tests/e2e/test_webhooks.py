"""Organisations without Kafka: signed webhook POSTs, retried with backoff, parked visibly."""

from __future__ import annotations

import copy
import time
import uuid
from typing import Any

import httpx
import pytest

from adapters.database import make_engine
from adapters.ledger.webhooks import WebhookQueue
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.events import DeadLetter
from tests.e2e.conftest import WebhookReceiver, new_bundle, referral_id_of, resource, task_of
from tests.helpers import eventually, wait_for_record

pytestmark = pytest.mark.integration


def zoetermeer_bundle(marker: str = "") -> dict[str, Any]:
    """A referral for Zoetermeer's webhook; ``marker`` goes into the GP's question,
    so the receiver can be armed before the referral exists."""
    bundle = copy.deepcopy(new_bundle())
    if marker:
        resource(bundle, "ServiceRequest")["note"] = [{"text": f"Graag contact ({marker})"}]
    resource(bundle, "Patient")["address"] = [
        {"use": "home", "line": ["Dorpsstraat 20"], "postalCode": "2712 AB", "city": "Zoetermeer"}
    ]
    return bundle


def test_a_webhook_is_signed_retried_after_failures_and_delivered_once(
    gp: httpx.Client, webhook_receiver: WebhookReceiver, database_url: str
) -> None:
    marker = f"fail-twice-{uuid.uuid4()}"
    webhook_receiver.failures_left[marker] = 2
    referral_id = referral_id_of(task_of(gp.post("", json=zoetermeer_bundle(marker))))

    eventually(lambda: len(webhook_receiver.attempts_for(referral_id)) >= 3, "three attempts")
    time.sleep(1.0)  # any further (wrong) attempt would arrive by now
    attempts = webhook_receiver.attempts_for(referral_id)
    assert len(attempts) == 3, "two failures, one success, then no more"
    assert all(a["valid"] for a in attempts), "every POST carries a valid signature"
    assert len({a["delivery_id"] for a in attempts}) == 1, "retries keep the delivery id"
    delivered = attempts[-1]["body"]
    assert delivered["details"]["person"]["display_name"] == "Johanna de Vries-Bakker"
    assert "999993653" not in str(delivered), "the BSN never leaves"
    assert delivered["event"]["data"]["organisation_id"] == "xtra-zoetermeer"

    engine = make_engine(database_url)
    with engine.connect() as connection:
        state = WebhookQueue(connection).state_of(delivered["event"]["id"])
    engine.dispose()
    assert state == ("delivered", 3, None)


def test_a_webhook_that_keeps_failing_is_parked_with_a_dead_letter(
    gp: httpx.Client, webhook_receiver: WebhookReceiver, kafka_topics: str, database_url: str
) -> None:
    marker = f"fail-always-{uuid.uuid4()}"
    webhook_receiver.always_fail.add(marker)
    referral_id = referral_id_of(task_of(gp.post("", json=zoetermeer_bundle(marker))))

    record = wait_for_record(
        kafka_topics, topics.DEAD_LETTER, lambda r: r.key == referral_id.encode(), timeout=30
    )
    dead = CloudEvent[DeadLetter].model_validate_json(record.value).data
    assert dead.reason == "undeliverable"
    assert dead.service == "webhook-delivery"
    assert "HTTP 500" in dead.detail
    assert "Johanna" not in dead.original_value, "the parked record carries no personal data"
    assert len(webhook_receiver.attempts_for(referral_id)) >= 3, "it backed off and retried"
