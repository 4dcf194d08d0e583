"""Where a GP system may ask Brug to send notifications, tried at ``POST /fhir/Subscription``
in-process: refused endpoints are refused before anything is stored or sent (no request
leaves the test), and a client's live Subscriptions are limited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from faststream.kafka import TestKafkaBroker

from adapters.clients import Client, ClientKind, ClientRegistry, hash_token
from contracts.fhir_systems import BACKPORT_PAYLOAD_CONTENT, REFERRAL_FEEDBACK_TOPIC
from services.fhir_gateway.app import create_app
from services.fhir_gateway.settings import GatewaySettings
from tests.conftest import free_port

pytestmark = pytest.mark.integration  # the real PostgreSQL

STRICT, DEV = "token-of-a-production-his", "token-of-a-his-in-development"
COUNTED = "token-of-a-his-whose-subscriptions-are-counted"  # used by one test only
LIMIT = 2


def _client(client_id: str, agb: str, token: str, *, loopback: bool) -> Client:
    return Client(
        client_id=client_id,
        kind=ClientKind.GP,
        organisation=agb,
        name=client_id,
        token_sha256=hash_token(token),
        allow_loopback_http=loopback,
    )


@pytest.fixture
async def fhir(handler_database: str, tmp_path: Path) -> AsyncIterator[TestClient]:
    clients = tmp_path / "clients.json"
    registry = ClientRegistry(
        clients=[
            _client("his-strict", "01999101", STRICT, loopback=False),
            _client("his-dev", "01999102", DEV, loopback=True),
            _client("his-counted", "01999103", COUNTED, loopback=True),
        ]
    )
    clients.write_text(registry.model_dump_json())
    settings = GatewaySettings(
        database_url=handler_database,
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
        clients_path=clients,
        max_subscriptions_per_client=LIMIT,
    )
    app = create_app(settings)
    async with TestKafkaBroker(app.state.broker):  # nothing listens on its Kafka address
        with TestClient(app) as client:
            yield client


def _subscribe(fhir: TestClient, token: str, endpoint: str) -> Any:
    body = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Feedback on our referrals",
        "criteria": REFERRAL_FEEDBACK_TOPIC,
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": BACKPORT_PAYLOAD_CONTENT, "valueCode": "id-only"}]},
        },
    }
    return fhir.post(
        "/fhir/Subscription",
        json=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
    )


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:9186/metrics",  # Brug's own metrics port, the issue's probe
        "https://127.0.0.1:8443/hook",
        "https://10.0.0.5/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]:8443/hook",
        "https://[fd00::5]/hook",
        "http://93.184.215.14/hook",  # public, but not https (a value: nothing is sent)
    ],
)
def test_an_endpoint_brug_may_not_reach_is_refused_with_an_operation_outcome(
    fhir: TestClient, endpoint: str
) -> None:
    reply = _subscribe(fhir, STRICT, endpoint)
    assert reply.status_code == 422, reply.text
    [issue] = reply.json()["issue"]
    assert issue["code"] == "value"
    assert issue["expression"] == ["Subscription.channel.endpoint"]


def test_a_development_client_may_use_plain_http_on_loopback_only(fhir: TestClient) -> None:
    assert _subscribe(fhir, DEV, "http://127.0.0.1:8765/hook").status_code == 201
    assert _subscribe(fhir, DEV, "http://10.0.0.5/hook").status_code == 422


def test_a_client_has_at_most_the_configured_number_of_live_subscriptions(
    fhir: TestClient,
) -> None:
    made = [_subscribe(fhir, COUNTED, f"http://127.0.0.1:8765/{n}") for n in range(LIMIT)]
    assert [reply.status_code for reply in made] == [201] * LIMIT
    over = _subscribe(fhir, COUNTED, "http://127.0.0.1:8765/one-too-many")
    assert over.status_code == 422, over.text
    assert over.json()["issue"][0]["code"] == "business-rule"

    deleted = fhir.delete(
        f"/fhir/Subscription/{made[0].json()['id']}",
        headers={"Authorization": f"Bearer {COUNTED}"},
    )
    assert deleted.status_code in (200, 204)
    assert _subscribe(fhir, COUNTED, "http://127.0.0.1:8765/again").status_code == 201
