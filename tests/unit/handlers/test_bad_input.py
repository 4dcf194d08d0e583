"""Inputs that once answered 500 (issue 12), in-process: each must be refused with a 4xx
OperationOutcome over HTTP, and answered at once (not retried) on a GP system's Kafka
topic. Plus the limits of the edges: the body size while reading, authentication before
the body is parsed, and one ServiceRequest identifier for one patient only.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from faststream.kafka import KafkaBroker, TestKafkaBroker

from contracts import topics
from deploy.demo import SAMPLE_GP_CLIENT, sample_bundle
from deploy.devstack.stack import dev_tokens
from services.console.app import create_app as create_console_app
from services.console.settings import ConsoleSettings
from services.fhir_gateway.app import create_app
from services.fhir_gateway.settings import GatewaySettings
from services.social_gateway.app import create_app as create_social_app
from services.social_gateway.settings import SocialGatewaySettings
from tests.conftest import free_port
from tests.unit.handlers.support import DeadLetters
from tests.unit.handlers.test_fhir_gateway import Outcomes

pytestmark = pytest.mark.integration  # the real PostgreSQL

GP = {"Authorization": f"Bearer {dev_tokens()[SAMPLE_GP_CLIENT]}"}
FHIR_JSON = {"Content-Type": "application/fhir+json"}
WELFARE = {"Authorization": f"Bearer {dev_tokens()['case-dynamo-amsterdam']}"}


def _resource(bundle: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind)


def _changed(change: Callable[[dict[str, Any]], None]) -> bytes:
    bundle = copy.deepcopy(sample_bundle())
    change(bundle)
    return json.dumps(bundle).encode()


def _nul_in_note(bundle: dict[str, Any]) -> None:
    _resource(bundle, "ServiceRequest")["note"][0]["text"] = "graag\x00contact"


def _long_identifier(bundle: dict[str, Any]) -> None:
    _resource(bundle, "ServiceRequest")["identifier"][0]["value"] = "W" * 300
    bundle["entry"][0]["request"].pop("ifNoneExist")


def _year_only_consent(bundle: dict[str, Any]) -> None:
    _resource(bundle, "Consent")["provision"]["period"] = {"start": "2020", "end": "2030"}


def _deep() -> bytes:
    return b'{"resourceType": "Bundle", "type": "transaction", "entry": ' + b"[" * 100_000


# name, body, extra headers, expected status, expected issue code
SUBMISSIONS: list[tuple[str, bytes, dict[str, str], int, str]] = [
    ("NUL in a note", _changed(_nul_in_note), {}, 400, "invalid"),
    ("identifier of 300 characters", _changed(_long_identifier), {}, 422, "too-long"),
    ("X-Request-ID of 200 characters", _changed(lambda b: None), {"X-Request-ID": "r" * 200}, 400,
     "value"),
    ("Consent period with year-only dates", _changed(_year_only_consent), {}, 422,
     "not-supported"),
    ("JSON nested 100,000 deep", _deep(), {}, 400, "too-costly"),
]  # fmt: skip


def _settings(database_url: str) -> GatewaySettings:
    return GatewaySettings(
        database_url=database_url, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}"
    )


@pytest.fixture
async def gateway(handler_database: str) -> AsyncIterator[TestClient]:
    app = create_app(_settings(handler_database))
    async with TestKafkaBroker(app.state.broker):
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client


@pytest.fixture
async def social(handler_database: str) -> AsyncIterator[TestClient]:
    settings = SocialGatewaySettings(
        database_url=handler_database, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}"
    )
    app = create_social_app(settings)
    async with TestKafkaBroker(app.state.broker):
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client


def assert_outcome(answer: Any, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text[:500]
    assert answer.headers["content-type"].startswith("application/fhir+json")
    outcome: dict[str, Any] = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == code, outcome
    assert outcome["issue"][0]["diagnostics"]
    return outcome


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [case[1:] for case in SUBMISSIONS],
    ids=[case[0] for case in SUBMISSIONS],
)
def test_a_once_fatal_submission_is_a_4xx_operation_outcome(
    gateway: TestClient, body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    answer = gateway.post("/fhir", content=body, headers=GP | FHIR_JSON | headers)
    assert_outcome(answer, status, code)


@pytest.mark.parametrize(
    ("query", "code"),
    [("_count=²", "value"), ("_lastUpdated=eq9999-12-31", "value")],
    ids=["superscript two as _count", "the last day of year 9999"],
)
def test_a_once_fatal_search_is_a_400_operation_outcome(
    gateway: TestClient, query: str, code: str
) -> None:
    assert_outcome(gateway.get(f"/fhir/Task?{query}", headers=GP), 400, code)


@pytest.fixture
async def inbound(handler_database: str) -> AsyncIterator[FastAPI]:
    app = create_app(_settings(handler_database))
    yield app
    await app.state.fhir_edge.engine.dispose()


async def test_on_the_kafka_topic_each_is_answered_at_once_and_never_retried(
    inbound: FastAPI,
) -> None:
    broker: KafkaBroker = inbound.state.broker
    outcomes = Outcomes(broker, SAMPLE_GP_CLIENT)
    dead_letters = DeadLetters(broker)
    topic = topics.gp_referrals(SAMPLE_GP_CLIENT)

    async with TestKafkaBroker(broker) as br:
        for index, (_, body, headers, _, _) in enumerate(SUBMISSIONS):
            key = headers.get("X-Request-ID", f"bad-input-{index}")
            await br.publish(body, topic, key=key.encode())

    answered = [(status, outcome["issue"][0]["code"]) for _, status, outcome in outcomes.received]
    assert answered == [(str(case[3]), case[4]) for case in SUBMISSIONS]
    assert dead_letters.received == [], "refused at once: nothing to retry or park"


def test_a_body_over_the_limit_is_refused_while_it_is_read(gateway: TestClient) -> None:
    def chunks() -> Any:
        for _ in range(40):  # 2.5 MiB without a Content-Length
            yield b" " * 65_536

    streamed = gateway.post("/fhir", content=chunks(), headers=GP | FHIR_JSON)
    declared = gateway.post(
        "/fhir", content=b"{}", headers=GP | FHIR_JSON | {"Content-Length": "99999999"}
    )

    assert_outcome(streamed, 413, "too-long")
    assert_outcome(declared, 413, "too-long")


def test_a_large_unauthenticated_body_on_the_social_edge_is_never_parsed(
    social: TestClient,
) -> None:
    path = "/social/v1/referrals/0b5d3c1e-8f0a-4c55-9d7e-3f2a1b6c7d80/status"
    big = b'{"status": "' + b"x" * 20_000_000 + b'"}'
    small_but_anonymous = b'{"status": ' + b"[" * 100_000

    for body in (big, small_but_anonymous):
        answer = social.post(path, content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 401, answer.text[:300]
        assert answer.headers["content-type"] == "application/problem+json"
    too_big = social.post(path, content=big, headers=WELFARE | {"Content-Type": "application/json"})
    assert too_big.status_code == 413
    assert too_big.json()["status"] == 413


def _another_patient(bundle: dict[str, Any]) -> None:
    patient = _resource(bundle, "Patient")
    patient["name"] = [{"family": "Bakker", "given": ["Kees"], "text": "Kees Bakker"}]
    patient["birthDate"] = "1952-07-14"
    patient["identifier"] = [
        {"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999990457"}
    ]


def test_one_identifier_is_one_patient_only(gateway: TestClient) -> None:
    first = sample_bundle()
    same_patient_again = copy.deepcopy(first)
    _resource(same_patient_again, "Patient")["telecom"][0]["value"] = "06-87654321"
    another_patient = copy.deepcopy(first)
    _another_patient(another_patient)

    def submit(bundle: dict[str, Any]) -> Any:
        return gateway.post("/fhir", content=json.dumps(bundle), headers=GP | FHIR_JSON)

    created, again, other = submit(first), submit(same_patient_again), submit(another_patient)

    assert created.status_code == 201, created.text
    assert again.status_code == 200, again.text
    assert _task_location(again.json()) == _task_location(created.json())
    outcome = assert_outcome(other, 409, "duplicate")
    assert "another patient" in outcome["issue"][0]["diagnostics"]
    assert "Bakker" not in other.text, "nothing of either patient is echoed"


def _task_location(answer: dict[str, Any]) -> str:
    """The Task the ServiceRequest's entry names (``response.outcome``)."""
    return str(
        next(
            e["response"]["outcome"]["issue"][0]["details"]["text"]
            for e in answer["entry"]
            if "outcome" in e["response"]
        )
    )


@pytest.fixture
def console(handler_database: str) -> Iterator[TestClient]:
    settings = ConsoleSettings(
        database_url=handler_database,
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
        console_kafka_side=False,
    )
    with TestClient(create_console_app(settings), follow_redirects=False) as client:
        yield client


def test_the_console_reads_no_form_over_its_limit_nor_one_without_a_session(
    console: TestClient,
) -> None:
    big_login = console.post("/login", data={"username": "olga", "password": "x" * 70_000})
    anonymous = console.post(f"/referrals/{uuid.uuid4()}/reveal", data={"reason": "x"})

    assert big_login.status_code == 413
    assert big_login.headers["content-type"] == "application/problem+json"
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/login")
