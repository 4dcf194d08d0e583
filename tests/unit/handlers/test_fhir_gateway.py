"""The FHIR gateway in-process, as ``services/fhir_gateway/app.py`` builds it: FastAPI's
TestClient in front of the HTTP routes, FastStream's in-memory broker in front of the
Kafka inbound handler, the real PostgreSQL (a database of its own) behind.

What is asserted: the sample referral is accepted (201) and its ``ReferralSubmitted`` is in
the outbox, a resubmission answers 200 with the same Task, a bad token is a 401
OperationOutcome, an unreachable database a 503, the GP's withdrawal of a routed referral
puts exactly one ``ReferralWithdrawn`` in the outbox, and a Bundle on a GP system's topic
is answered on its outcome topic and accepted the same way.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from faststream.kafka import KafkaBroker, KafkaMessage, TestKafkaBroker
from httpx import Response
from sqlalchemy import Engine

from adapters.ledger.repository import Ledger
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.codes import ReferrerDiscipline, SubmissionChannel
from contracts.events import ReferralSubmitted, ReferralWithdrawn
from deploy.demo import SAMPLE_GP_CLIENT, SAMPLE_ORGANISATION, sample_bundle
from deploy.devstack.stack import dev_tokens
from services.fhir_gateway.app import create_app
from services.fhir_gateway.settings import GatewaySettings
from tests.conftest import free_port
from tests.unit.handlers.support import outbox_rows, referral

pytestmark = pytest.mark.integration  # the real PostgreSQL

GP_TOKEN = dev_tokens()[SAMPLE_GP_CLIENT]
WELFARE_TOKEN = dev_tokens()["case-dynamo-amsterdam"]
FHIR_JSON = "application/fhir+json"


def _settings(database_url: str) -> GatewaySettings:
    # Nothing listens on Kafka's address: only the in-memory broker may be used.
    return GatewaySettings(
        database_url=database_url, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}"
    )


@pytest.fixture
async def gateway(handler_database: str) -> AsyncIterator[TestClient]:
    """A gateway of its own per test, started (lifespan) on the in-memory broker."""
    app = create_app(_settings(handler_database))
    async with TestKafkaBroker(app.state.broker):
        with TestClient(app) as client:
            yield client


def _submit(gateway: TestClient, bundle: dict[str, Any], token: str = GP_TOKEN) -> Response:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": FHIR_JSON}
    return gateway.post("/fhir", content=json.dumps(bundle), headers=headers)


def _locations(answer: dict[str, Any]) -> dict[str, str]:
    """Resource type → the ``Type/id`` of each transaction-response entry with a location."""
    found = (entry["response"].get("location") for entry in answer["entry"])
    return {
        location.split("/")[0]: "/".join(location.split("/")[:2]) for location in found if location
    }


def _referral_id(answer: dict[str, Any]) -> uuid.UUID:
    return uuid.UUID(_locations(answer)["ServiceRequest"].split("/")[1])


def _task(answer: dict[str, Any]) -> str:
    """``Task/<id>`` as the ServiceRequest's entry names it (``response.outcome``)."""
    entry = next(
        e for e in answer["entry"] if "ServiceRequest/" in e["response"].get("location", "")
    )
    [issue] = entry["response"]["outcome"]["issue"]
    return "/".join(issue["details"]["text"].split("/")[:2])


def test_the_sample_referral_is_accepted_and_its_event_put_in_the_outbox(
    gateway: TestClient, ledger_engine: Engine
) -> None:
    answer = _submit(gateway, sample_bundle())

    assert answer.status_code == 201, answer.text
    assert answer.headers["content-type"].startswith(FHIR_JSON)
    body = answer.json()
    assert body["type"] == "transaction-response"
    referral_id = _referral_id(body)
    row = referral(ledger_engine, referral_id)
    assert f"Task/{row.task_id}" == _task(body)
    [message] = outbox_rows(ledger_engine, referral_id)
    assert message.topic == topics.REFERRALS_SUBMITTED
    assert message.key == str(referral_id)
    assert message.event_type == ReferralSubmitted.EVENT_TYPE
    assert message.published_at is None, "the relay publishes it, not the gateway"
    submitted = CloudEvent[ReferralSubmitted].model_validate_json(message.value)
    assert submitted.data.referral_id == referral_id
    assert submitted.data.municipality_code == row.municipality_code
    assert submitted.data.channel is SubmissionChannel.FHIR_REST
    # The sample's PractitionerRole carries no code: who referred is not known.
    assert submitted.data.referrer_discipline is ReferrerDiscipline.UNKNOWN


def test_the_transaction_response_has_one_entry_per_request_entry_with_absolute_urls(
    gateway: TestClient,
) -> None:
    bundle = sample_bundle()
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert "Task" not in kinds, "the sample sends no Task: it learns its Task from the answer"

    body = _submit(gateway, bundle).json()

    assert len(body["entry"]) == len(bundle["entry"])
    service_request = kinds.index("ServiceRequest")
    for index, entry in enumerate(body["entry"]):
        assert entry["response"]["status"] in ("201 Created", "200 OK")
        assert ("location" in entry["response"]) == (index == service_request)
        assert "resource" not in entry
    base = "http://127.0.0.1:8080/fhir"  # GatewaySettings' default fhir_base_url
    referral_id = _referral_id(body)
    assert body["entry"][service_request]["fullUrl"] == f"{base}/ServiceRequest/{referral_id}"
    headers = {"Authorization": f"Bearer {GP_TOKEN}"}
    found = gateway.get(
        "/fhir/Task", params={"focus": f"ServiceRequest/{referral_id}"}, headers=headers
    ).json()
    assert [e["fullUrl"] for e in found["entry"]] == [f"{base}/{_task(body)}"]


def test_a_bundle_with_its_own_task_gets_the_task_entry_in_its_place(
    gateway: TestClient, ledger_engine: Engine
) -> None:
    bundle = sample_bundle()
    task = {"resourceType": "Task", "status": "requested", "intent": "order"}
    bundle["entry"].insert(
        0,
        {
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "resource": task,
            "request": {"method": "POST", "url": "Task"},
        },
    )

    body = _submit(gateway, bundle).json()

    assert len(body["entry"]) == len(bundle["entry"])
    row = referral(ledger_engine, _referral_id(body))
    assert body["entry"][0]["response"]["location"] == f"Task/{row.task_id}/_history/1"
    assert body["entry"][0]["fullUrl"] == f"http://127.0.0.1:8080/fhir/Task/{row.task_id}"


def test_a_resubmission_answers_200_with_the_same_task(
    gateway: TestClient, ledger_engine: Engine
) -> None:
    bundle = sample_bundle()
    first = _submit(gateway, bundle)
    assert first.status_code == 201, first.text

    again = _submit(gateway, bundle)

    assert again.status_code == 200, again.text
    assert _task(again.json()) == _task(first.json())
    referral_id = _referral_id(first.json())
    assert len(outbox_rows(ledger_engine, referral_id)) == 1, "one referral, one event"


def test_a_bad_token_is_a_401_operation_outcome(gateway: TestClient) -> None:
    wrong = _submit(gateway, sample_bundle(), token="not-a-token")
    not_a_gp = _submit(gateway, sample_bundle(), token=WELFARE_TOKEN)
    missing = gateway.get("/fhir/Task")

    for answer, code in ((wrong, "security"), (not_a_gp, "security"), (missing, "login")):
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Bearer")
        outcome = answer.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["code"] == code


async def test_an_unreachable_database_is_a_503_with_retry_after() -> None:
    closed = f"postgresql+psycopg://brug:brug@127.0.0.1:{free_port()}/brug"
    app = create_app(_settings(closed))
    async with TestKafkaBroker(app.state.broker):
        with TestClient(app) as gateway:
            answer = _submit(gateway, sample_bundle())

    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "10"
    assert answer.json()["issue"][0]["code"] == "transient"


def test_withdrawing_a_routed_referral_puts_one_withdrawal_in_the_outbox(
    gateway: TestClient, ledger_engine: Engine
) -> None:
    accepted = _submit(gateway, sample_bundle())
    referral_id = _referral_id(accepted.json())
    with ledger_engine.begin() as connection:  # as the router leaves it
        Ledger(connection).assign(referral_id, SAMPLE_ORGANISATION, at=datetime.now(UTC))
    task = _task(accepted.json())
    patch = [{"op": "replace", "path": "/status", "value": "cancelled"}]
    headers = {"Authorization": f"Bearer {GP_TOKEN}", "Content-Type": "application/json-patch+json"}

    withdrawn = gateway.patch(f"/fhir/{task}", content=json.dumps(patch), headers=headers)
    again = gateway.patch(f"/fhir/{task}", content=json.dumps(patch), headers=headers)

    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["status"] == "cancelled"
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    withdrawals = [
        message
        for message in outbox_rows(ledger_engine, referral_id)
        if message.event_type == ReferralWithdrawn.EVENT_TYPE
    ]
    assert len(withdrawals) == 1, "withdrawing again tells the organisation nothing new"
    [message] = withdrawals
    assert message.topic == topics.social_referrals(SAMPLE_ORGANISATION)
    assert message.key == str(referral_id)
    event = CloudEvent[ReferralWithdrawn].model_validate_json(message.value)
    assert event.data.organisation_id == SAMPLE_ORGANISATION


class Outcomes:
    """The answers on a GP system's outcome topic, as that GP system would consume them."""

    def __init__(self, broker: KafkaBroker, client_id: str) -> None:
        self.received: list[tuple[bytes | None, str, dict[str, Any]]] = []

        @broker.subscriber(topics.gp_outcomes(client_id))
        async def catch(body: Any, message: KafkaMessage) -> None:
            record: Any = message.raw_message
            status = message.headers["brug-status"]
            self.received.append((record.key, status, json.loads(record.value)))


@pytest.fixture
async def inbound(handler_database: str) -> AsyncIterator[FastAPI]:
    """A gateway whose Kafka side alone is used: no HTTP request, so no lifespan."""
    app = create_app(_settings(handler_database))
    yield app
    await app.state.fhir_edge.engine.dispose()


async def test_a_bundle_on_the_gp_topic_is_accepted_and_answered_on_its_outcome_topic(
    inbound: FastAPI, ledger_engine: Engine
) -> None:
    broker: KafkaBroker = inbound.state.broker
    outcomes = Outcomes(broker, SAMPLE_GP_CLIENT)
    bundle = json.dumps(sample_bundle()).encode()

    async with TestKafkaBroker(broker) as br:
        await br.publish(bundle, topics.gp_referrals(SAMPLE_GP_CLIENT), key=b"request-1")
        await br.publish(bundle, topics.gp_referrals(SAMPLE_GP_CLIENT), key=b"request-1")

    [(key, status, answer), (_, repeated_status, repeated)] = outcomes.received
    assert (key, status) == (b"request-1", "201")
    assert (repeated_status, repeated) == ("201", answer), "the same key gets the stored answer"
    referral_id = _referral_id(answer)
    [message] = outbox_rows(ledger_engine, referral_id)
    assert message.event_type == ReferralSubmitted.EVENT_TYPE
    submitted = CloudEvent[ReferralSubmitted].model_validate_json(message.value)
    assert submitted.data.channel is SubmissionChannel.KAFKA
