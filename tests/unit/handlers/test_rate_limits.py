"""Rate limits per client at both edges and at the token endpoint, in-process with the
real PostgreSQL and a tiny limit: the client over it gets 429 with Retry-After in its
edge's error format, and another client is not affected."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from faststream.kafka import TestKafkaBroker
from joserfc import jwt
from joserfc.jwk import ECKey

from adapters.clients import Client, ClientKind, ClientRegistry, hash_token
from adapters.smart import ASSERTION_TYPE
from services.fhir_gateway.app import create_app as create_fhir_app
from services.fhir_gateway.settings import GatewaySettings
from services.social_gateway.app import create_app as create_social_app
from services.social_gateway.settings import SocialGatewaySettings
from tests.conftest import free_port

pytestmark = pytest.mark.integration  # the real PostgreSQL

BUSY, CALM = "token-of-a-busy-his", "token-of-a-calm-his"
BUSY_CASE, CALM_CASE = "token-of-a-busy-case-system", "token-of-a-calm-case-system"
KEY = ECKey.generate_key("P-384", auto_kid=True)


def _client(client_id: str, kind: ClientKind, token: str, **more: Any) -> Client:
    return Client(
        client_id=client_id,
        kind=kind,
        organisation="01999301" if kind is ClientKind.GP else "dynamo-amsterdam",
        name=client_id,
        token_sha256=hash_token(token),
        **more,
    )


@pytest.fixture
def settings(handler_database: str, tmp_path: Path) -> dict[str, Any]:
    registry = ClientRegistry(
        clients=[
            _client("his-busy", ClientKind.GP, BUSY, jwks={"keys": [KEY.as_dict(private=False)]}),
            _client("his-calm", ClientKind.GP, CALM),
            _client("case-busy", ClientKind.WELFARE, BUSY_CASE),
            _client("case-calm", ClientKind.WELFARE, CALM_CASE),
        ]
    )
    (tmp_path / "clients.json").write_text(registry.model_dump_json())
    (tmp_path / "brug.pem").write_bytes(ECKey.generate_key("P-256").as_pem(private=True))
    return {
        "database_url": handler_database,
        "kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",  # nothing listens there
        "clients_path": tmp_path / "clients.json",
        "token_signing_key_file": tmp_path / "brug.pem",
        "allow_static_tokens": True,
        "rate_limit": "2/minute",
        "token_rate_limit": "1/minute",
    }


@asynccontextmanager
async def _running(app: Any) -> AsyncIterator[TestClient]:
    async with TestKafkaBroker(app.state.broker):
        with TestClient(app) as client:
            yield client


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_fhir_edge_throttles_one_client_and_not_another(
    settings: dict[str, Any],
) -> None:
    async with _running(create_fhir_app(GatewaySettings(**settings))) as fhir:
        # A POST is counted once, although its token is checked before the body is read.
        posted = fhir.post(
            "/fhir",
            content=b"{}",
            headers={**_bearer(BUSY), "Content-Type": "application/fhir+json"},
        )
        assert posted.status_code == 400  # admitted, then refused for its body
        assert fhir.get("/fhir/Task", headers=_bearer(BUSY)).status_code == 200
        throttled = fhir.get("/fhir/Task", headers=_bearer(BUSY))
        assert throttled.status_code == 429
        assert 0 < int(throttled.headers["retry-after"]) <= 60
        assert throttled.json()["resourceType"] == "OperationOutcome"
        assert throttled.json()["issue"][0]["code"] == "throttled"
        assert fhir.get("/fhir/Task", headers=_bearer(CALM)).status_code == 200


async def test_the_social_edge_throttles_one_client_and_not_another(
    settings: dict[str, Any],
) -> None:
    async with _running(create_social_app(SocialGatewaySettings(**settings))) as social:
        path = f"/social/v1/referrals/{uuid.uuid4()}"
        for _ in range(2):
            assert social.get(path, headers=_bearer(BUSY_CASE)).status_code == 404
        throttled = social.get(path, headers=_bearer(BUSY_CASE))
        assert throttled.status_code == 429
        assert int(throttled.headers["retry-after"]) > 0
        assert throttled.headers["content-type"] == "application/problem+json"
        assert throttled.json()["status"] == 429
        assert social.get(path, headers=_bearer(CALM_CASE)).status_code == 404


async def test_the_token_endpoint_throttles_per_asserted_client(
    settings: dict[str, Any],
) -> None:
    def ask(fhir: TestClient) -> Any:
        claims = {
            "iss": "his-busy",
            "sub": "his-busy",
            "aud": "http://127.0.0.1:8080/fhir/auth/token",
            "exp": int(time.time()) + 60,
            "jti": str(uuid.uuid4()),
        }
        signed = jwt.encode({"alg": "ES384", "kid": KEY.kid}, claims, KEY, algorithms=["ES384"])
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": signed,
            "scope": "system/Task.rs",
        }
        return fhir.post("/fhir/auth/token", data=form)

    async with _running(create_fhir_app(GatewaySettings(**settings))) as fhir:
        assert ask(fhir).status_code == 200
        throttled = ask(fhir)
        assert throttled.status_code == 429
        assert int(throttled.headers["retry-after"]) > 0
        assert throttled.json()["error"] == "temporarily_unavailable"
        # Requests that name no known client are counted by source address instead.
        anonymous = fhir.post("/fhir/auth/token", data={"grant_type": "client_credentials"})
        assert anonymous.status_code == 400
