"""The bad-input corpus (``tests/corpus/*.json``) against the edges in-process: every case
gets exactly its expected 4xx, as an OperationOutcome (FHIR edge, Kafka inbound topic)
or a problem document (social edge), and no case is retried or dead-lettered on Kafka.

The data files say what each case is; this module only turns them into requests.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from faststream.kafka import KafkaBroker, TestKafkaBroker
from sqlalchemy import Engine

from contracts import topics
from deploy.demo import SAMPLE_GP_CLIENT, sample_bundle
from deploy.devstack.stack import dev_tokens
from services.fhir_gateway.app import create_app
from services.fhir_gateway.settings import GatewaySettings
from services.social_gateway.app import create_app as create_social_app
from services.social_gateway.settings import SocialGatewaySettings
from tests.conftest import free_port
from tests.unit.handlers.support import DeadLetters
from tests.unit.handlers.test_fhir_gateway import Outcomes
from tests.unit.handlers.test_social_gateway import routed_referral

pytestmark = pytest.mark.integration  # the real PostgreSQL

CORPUS = Path(__file__).parents[2] / "corpus"
TOKENS = dev_tokens()
AUTH = {
    "gp": TOKENS[SAMPLE_GP_CLIENT],
    "welfare": TOKENS["case-dynamo-amsterdam"],
    "other-welfare": TOKENS["case-welzijn-lelystad"],
}


def corpus(edge: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((CORPUS / f"{edge}.json").read_text())["cases"]
    return cases


def _expand(value: Any) -> Any:
    """``{"$repeat": s, "times": n}`` → s * n; ``{"$nest": n}`` → n ``[``; a list of
    pieces (in ``text``, ``path``, ``key``) is joined by ``_joined``."""
    if isinstance(value, dict):
        if "$repeat" in value:
            return value["$repeat"] * value["times"]
        if "$nest" in value:
            return "[" * value["$nest"]
        return {key: _expand(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand(item) for item in value]
    return value


def _joined(value: str | list[Any] | dict[str, Any]) -> str:
    if isinstance(value, dict):
        return str(_expand(value))
    return value if isinstance(value, str) else "".join(_expand(piece) for piece in value)


def mutated(mutations: list[dict[str, Any]]) -> dict[str, Any]:
    """The sample Bundle (a fresh identifier) with each ``set`` or ``delete`` applied at
    its ``/``-separated path (list indexes as numbers)."""
    bundle = copy.deepcopy(sample_bundle())
    for mutation in mutations:
        path = mutation.get("set") or mutation["delete"]
        *parents, last = [int(p) if p.isdigit() else p for p in path.split("/")]
        node: Any = bundle
        for part in parents:
            node = node[part]
        if "set" in mutation:
            node[last] = _expand(mutation["value"])
        else:
            del node[last]
    return bundle


def body_of(case: dict[str, Any]) -> bytes:
    if "bundle" in case:
        return json.dumps(mutated(case["bundle"])).encode()
    if "json" in case:
        return json.dumps(_expand(case["json"])).encode()
    if "text" in case:
        return _joined(case["text"]).encode("utf-8", "surrogatepass")
    if "hex" in case:
        return bytes.fromhex(case["hex"])
    return b""


def headers_of(case: dict[str, Any], default_auth: str, content_type: str) -> dict[str, str]:
    auth = case.get("auth", default_auth)
    headers = {"Content-Type": content_type}
    if auth != "none":
        headers["Authorization"] = f"Bearer {AUTH.get(auth, auth)}"
    return headers | {name: _joined(value) for name, value in case.get("headers", {}).items()}


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    names = [case["name"] for case in cases]
    assert len(set(names)) == len(names), "every case has a name of its own"
    return names


FHIR_CASES = corpus("fhir_edge")
SOCIAL_CASES = corpus("social_edge")
KAFKA_CASES = corpus("kafka_inbound")


def test_the_corpus_holds_at_least_60_distinct_bad_inputs() -> None:
    everything = FHIR_CASES + SOCIAL_CASES + KAFKA_CASES
    edges = (
        ["fhir"] * len(FHIR_CASES) + ["social"] * len(SOCIAL_CASES) + ["kafka"] * len(KAFKA_CASES)
    )
    distinct = {
        (edge, json.dumps(case, sort_keys=True))
        for edge, case in zip(edges, everything, strict=True)
    }
    assert len(distinct) == len(everything) >= 60
    assert all(400 <= case["status"] < 500 for case in everything)


@pytest.fixture(scope="module")
def fhir_edge(handler_database: str) -> Iterator[TestClient]:
    """One gateway for the whole corpus: no case changes what another one meets (a
    refused request leaves nothing behind). No lifespan: its broker is never needed."""
    settings = GatewaySettings(
        database_url=handler_database, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}"
    )
    yield TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.mark.parametrize("case", FHIR_CASES, ids=_ids(FHIR_CASES))
def test_the_fhir_edge_refuses(fhir_edge: TestClient, case: dict[str, Any]) -> None:
    method = case.get("method", "POST")
    headers = headers_of(case, "gp", "application/fhir+json")
    content = body_of(case) if method != "GET" else None
    answer = fhir_edge.request(
        method, _joined(case.get("path", "/fhir")), content=content, headers=headers
    )

    assert answer.status_code == case["status"], answer.text[:300]
    assert answer.headers["content-type"].startswith("application/fhir+json")
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == case["code"], outcome
    assert outcome["issue"][0]["diagnostics"]


@pytest.fixture(scope="module")
def social_edge(handler_database: str) -> Iterator[TestClient]:
    settings = SocialGatewaySettings(
        database_url=handler_database, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}"
    )
    yield TestClient(create_social_app(settings), raise_server_exceptions=False)


@pytest.mark.parametrize("case", SOCIAL_CASES, ids=_ids(SOCIAL_CASES))
def test_the_social_edge_refuses(
    social_edge: TestClient, ledger_engine: Engine, case: dict[str, Any]
) -> None:
    method = case.get("method", "POST")
    path = _joined(case["path"]).replace("{referral}", str(routed_referral(ledger_engine)))
    content = body_of(case) if method != "GET" else None
    headers = headers_of(case, "welfare", "application/json")
    answer = social_edge.request(method, path, content=content, headers=headers)

    assert answer.status_code == case["status"], answer.text[:300]
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert (problem["status"], problem["title"]) == (case["status"], case["title"])
    assert problem["detail"]


@pytest.fixture
async def inbound(handler_database: str) -> AsyncIterator[FastAPI]:
    settings = GatewaySettings(
        database_url=handler_database, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}"
    )
    app = create_app(settings)
    yield app
    await app.state.fhir_edge.engine.dispose()


@pytest.mark.parametrize("case", KAFKA_CASES, ids=_ids(KAFKA_CASES))
async def test_the_inbound_topic_answers_at_once(inbound: FastAPI, case: dict[str, Any]) -> None:
    broker: KafkaBroker = inbound.state.broker
    outcomes = Outcomes(broker, SAMPLE_GP_CLIENT)
    dead_letters = DeadLetters(broker)
    key = bytes.fromhex(case["key_hex"]) if "key_hex" in case else None
    if "key" in case:
        key = _joined(case["key"]).encode()

    async with TestKafkaBroker(broker) as br:
        await br.publish(
            body_of(case), topics.gp_referrals(SAMPLE_GP_CLIENT), key=key or case["name"].encode()
        )

    [(_, status, outcome)] = outcomes.received
    assert (status, outcome["resourceType"]) == (str(case["status"]), "OperationOutcome")
    assert outcome["issue"][0]["code"] == case["code"], outcome
    assert dead_letters.received == [], "answered at once: nothing retried or parked"
