"""SMART Backend Services at the edges, in-process with the real PostgreSQL: client systems
sign real assertions (EC P-384 and RSA keys made here, their public JWKs in a test
registry), get access tokens at ``POST /fhir/auth/token`` and call the edges with them;
and every way of getting this wrong is refused."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from faststream.kafka import TestKafkaBroker
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from adapters.clients import Client, ClientKind, ClientRegistry, hash_token
from adapters.smart import ASSERTION_TYPE
from services.fhir_gateway.app import create_app as create_fhir_app
from services.fhir_gateway.settings import GatewaySettings
from services.social_gateway.app import create_app as create_social_app
from services.social_gateway.settings import SocialGatewaySettings
from tests.conftest import free_port

pytestmark = pytest.mark.integration  # the real PostgreSQL

BASE_URL = "http://127.0.0.1:8080/fhir"
TOKEN_URL = f"{BASE_URL}/auth/token"
GP, WELFARE, STATIC_GP = "his-smart", "case-smart", "his-static"
STATIC_TOKEN = "a-static-token-of-a-his"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass
class Keys:
    ec: ECKey
    rsa: RSAKey
    welfare: ECKey
    stranger: ECKey  # registered nowhere


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(
        ec=ECKey.generate_key("P-384", auto_kid=True),
        rsa=RSAKey.generate_key(2048, auto_kid=True),
        welfare=ECKey.generate_key("P-384", auto_kid=True),
        stranger=ECKey.generate_key("P-384", auto_kid=True),
    )


@pytest.fixture(scope="module")
def files(keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The test registry and Brug's signing key."""
    folder = tmp_path_factory.mktemp("smart")
    registry = ClientRegistry(
        clients=[
            _client(GP, ClientKind.GP, "01999201", [keys.ec, keys.rsa]),
            _client(WELFARE, ClientKind.WELFARE, "dynamo-amsterdam", [keys.welfare]),
            Client(
                client_id=STATIC_GP,
                kind=ClientKind.GP,
                organisation="01999202",
                name=STATIC_GP,
                token_sha256=hash_token(STATIC_TOKEN),
            ),
        ]
    )
    (folder / "clients.json").write_text(registry.model_dump_json())
    (folder / "brug.pem").write_bytes(ECKey.generate_key("P-256").as_pem(private=True))
    return folder / "clients.json", folder / "brug.pem"


def _client(client_id: str, kind: ClientKind, organisation: str, keys: list[Any]) -> Client:
    jwks = {"keys": [key.as_dict(private=False) for key in keys]}
    return Client(
        client_id=client_id, kind=kind, organisation=organisation, name=client_id, jwks=jwks
    )


def _settings(database: str, files: tuple[Path, Path], **overrides: Any) -> dict[str, Any]:
    return {
        "database_url": database,
        "kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",  # nothing listens there
        "clients_path": files[0],
        "token_signing_key_file": files[1],
        "allow_static_tokens": False,
        **overrides,
    }


@asynccontextmanager
async def _running(app: Any) -> AsyncIterator[TestClient]:
    async with TestKafkaBroker(app.state.broker):
        with TestClient(app) as client:
            yield client


@pytest.fixture
async def fhir(handler_database: str, files: tuple[Path, Path]) -> AsyncIterator[TestClient]:
    app = create_fhir_app(GatewaySettings(**_settings(handler_database, files)))
    async with _running(app) as client:
        yield client


@pytest.fixture
async def social(handler_database: str, files: tuple[Path, Path]) -> AsyncIterator[TestClient]:
    app = create_social_app(SocialGatewaySettings(**_settings(handler_database, files)))
    async with _running(app) as client:
        yield client


def assertion(key: Any, alg: str, client_id: str = GP, **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "exp": now + 240,
        "jti": str(uuid.uuid4()),
        **claims,
    }
    header = {"alg": alg, "kid": key.kid, "typ": "JWT"}
    return jwt.encode(header, body, key, algorithms=[alg])


def ask(fhir: TestClient, signed: str, scope: str, **form: str) -> Any:
    fields = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
        "scope": scope,
        **form,
    }
    return fhir.post("/fhir/auth/token", data=fields, headers=FORM)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# Getting a token and using it ---------------------------------------------------------------


def test_an_ec_p384_assertion_gets_a_short_token_that_searches_tasks(
    fhir: TestClient, keys: Keys
) -> None:
    answer = ask(fhir, assertion(keys.ec, "ES384"), "system/Task.rs system/Patient.r")
    assert answer.status_code == 200, answer.text
    token = answer.json()
    assert token["token_type"] == "bearer"
    assert 0 < token["expires_in"] <= 300
    assert token["scope"] == "system/Task.rs"  # Patient is nothing Brug grants
    assert answer.headers["cache-control"] == "no-store"
    found = fhir.get("/fhir/Task?status=requested", headers=bearer(token["access_token"]))
    assert found.status_code == 200, found.text
    assert found.json()["resourceType"] == "Bundle"


def test_an_rsa_assertion_with_v1_scopes_gets_the_intersection(
    fhir: TestClient, keys: Keys
) -> None:
    answer = ask(fhir, assertion(keys.rsa, "RS384"), "system/*.read")
    assert answer.status_code == 200, answer.text
    assert answer.json()["scope"].split() == [
        "system/AuditEvent.s",
        "system/Communication.rs",
        "system/Subscription.rs",
        "system/Task.rs",
    ]
    found = fhir.get("/fhir/Task?_count=1", headers=bearer(answer.json()["access_token"]))
    assert found.status_code == 200, found.text


def test_es256_and_rs256_are_accepted_too(fhir: TestClient, keys: Keys) -> None:
    for key, alg in ((keys.rsa, "RS256"), (keys.ec, "ES384")):
        assert ask(fhir, assertion(key, alg), "system/Task.s").status_code == 200


def test_a_token_outside_its_scopes_is_forbidden(fhir: TestClient, keys: Keys) -> None:
    token = ask(fhir, assertion(keys.ec, "ES384"), "system/Task.s").json()["access_token"]
    submitted = fhir.post(
        "/fhir", content=b"{}", headers={**bearer(token), "Content-Type": "application/fhir+json"}
    )
    assert submitted.status_code == 403
    assert submitted.json()["issue"][0]["code"] == "forbidden"
    assert "insufficient_scope" in submitted.headers["www-authenticate"]
    read = fhir.get(f"/fhir/Task/{uuid.uuid4()}", headers=bearer(token))  # .s, no .r
    assert read.status_code == 403


# Refused assertions ------------------------------------------------------------------------


def _refusals(keys: Keys) -> Iterator[tuple[str, str]]:
    now = int(time.time())
    yield (
        "wrong key",
        jwt.encode(
            {"alg": "ES384", "kid": keys.ec.kid},
            {"iss": GP, "sub": GP, "aud": TOKEN_URL, "exp": now + 60, "jti": str(uuid.uuid4())},
            keys.stranger,
            algorithms=["ES384"],
        ),
    )
    yield "expired", assertion(keys.ec, "ES384", exp=now - 60)
    yield "exp too far ahead", assertion(keys.ec, "ES384", exp=now + 600)
    yield "no exp", assertion(keys.ec, "ES384", exp=None)
    yield "wrong aud", assertion(keys.ec, "ES384", aud="https://elsewhere.example/token")
    yield "sub is not iss", assertion(keys.ec, "ES384", sub=WELFARE)
    yield "unknown client", assertion(keys.stranger, "ES384", client_id="his-unknown")
    yield "another client's key", assertion(keys.welfare, "ES384")
    yield "not a jwt", "not-a-jwt"


def test_bad_assertions_are_invalid_clients(fhir: TestClient, keys: Keys) -> None:
    for why, signed in _refusals(keys):
        answer = ask(fhir, signed, "system/Task.rs")
        assert answer.status_code == 401, why
        assert answer.json()["error"] == "invalid_client", why


def test_an_assertion_is_used_once(fhir: TestClient, keys: Keys) -> None:
    signed = assertion(keys.ec, "ES384")
    assert ask(fhir, signed, "system/Task.rs").status_code == 200
    again = ask(fhir, signed, "system/Task.rs")
    assert again.status_code == 401
    assert again.json()["error"] == "invalid_client"
    assert "jti" in again.json()["error_description"]


def test_scopes_the_client_may_not_have_are_refused(fhir: TestClient, keys: Keys) -> None:
    for scope in ("system/Referral.rc", "system/Patient.read", "user/Task.rs", "openid"):
        answer = ask(fhir, assertion(keys.ec, "ES384"), scope)
        assert answer.status_code == 400, scope
        assert answer.json()["error"] == "invalid_scope", scope


def test_other_malformed_requests(fhir: TestClient, keys: Keys) -> None:
    signed = assertion(keys.ec, "ES384")
    wrong_grant = ask(fhir, signed, "system/Task.rs", grant_type="authorization_code")
    assert (wrong_grant.status_code, wrong_grant.json()["error"]) == (
        400,
        "unsupported_grant_type",
    )
    wrong_type = ask(fhir, signed, "system/Task.rs", client_assertion_type="urn:other")
    assert (wrong_type.status_code, wrong_type.json()["error"]) == (400, "invalid_request")
    as_json = fhir.post("/fhir/auth/token", json={"grant_type": "client_credentials"})
    assert (as_json.status_code, as_json.json()["error"]) == (400, "invalid_request")


# Refused access tokens ---------------------------------------------------------------------


def test_an_expired_access_token_is_refused(fhir: TestClient, files: tuple[Path, Path]) -> None:
    brug = ECKey.import_key(files[1].read_bytes())
    now = int(time.time())
    claims = {"iss": "brug", "aud": "brug", "sub": GP, "scope": "system/Task.rs"}
    expired = jwt.encode(
        {"alg": "ES256", "kid": brug.thumbprint()},
        {**claims, "iat": now - 900, "exp": now - 600},
        brug,
        algorithms=["ES256"],
    )
    answer = fhir.get("/fhir/Task", headers=bearer(expired))
    assert answer.status_code == 401
    assert answer.json()["resourceType"] == "OperationOutcome"
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]


def test_a_token_signed_by_another_key_is_refused(fhir: TestClient, keys: Keys) -> None:
    now = int(time.time())
    claims = {"iss": "brug", "aud": "brug", "sub": GP, "scope": "system/Task.rs", "exp": now + 60}
    forged = jwt.encode({"alg": "ES384"}, claims, keys.stranger, algorithms=["ES384"])
    assert fhir.get("/fhir/Task", headers=bearer(forged)).status_code == 401


def test_each_edge_takes_its_own_kind_of_client(
    fhir: TestClient, social: TestClient, keys: Keys
) -> None:
    gp_token = ask(fhir, assertion(keys.ec, "ES384"), "system/Task.rs").json()["access_token"]
    refused = social.get(f"/social/v1/referrals/{uuid.uuid4()}", headers=bearer(gp_token))
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"

    signed = assertion(keys.welfare, "ES384", client_id=WELFARE)
    welfare = ask(fhir, signed, "system/Referral.rc system/Task.rs")
    assert welfare.status_code == 200, welfare.text
    assert welfare.json()["scope"] == "system/Referral.cr"
    token = welfare.json()["access_token"]
    unknown = social.get(f"/social/v1/referrals/{uuid.uuid4()}", headers=bearer(token))
    assert unknown.status_code == 404  # authenticated: there is no such referral
    assert fhir.get("/fhir/Task", headers=bearer(token)).status_code == 401


def test_a_welfare_token_without_create_cannot_post(
    fhir: TestClient, social: TestClient, keys: Keys
) -> None:
    signed = assertion(keys.welfare, "ES384", client_id=WELFARE)
    token = ask(fhir, signed, "system/Referral.r").json()["access_token"]
    posted = social.post(
        f"/social/v1/referrals/{uuid.uuid4()}/status", json={}, headers=bearer(token)
    )
    assert posted.status_code == 403
    assert "system/Referral.c" in posted.json()["detail"]


async def test_static_tokens_need_the_dev_setting(
    fhir: TestClient, handler_database: str, files: tuple[Path, Path]
) -> None:
    refused = fhir.get("/fhir/Task", headers=bearer(STATIC_TOKEN))
    assert refused.status_code == 401
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert refused.json()["issue"][0]["code"] == "security"
    dev = create_fhir_app(
        GatewaySettings(**_settings(handler_database, files, allow_static_tokens=True))
    )
    async with _running(dev) as client:
        assert client.get("/fhir/Task", headers=bearer(STATIC_TOKEN)).status_code == 200


# Discovery ---------------------------------------------------------------------------------


def test_the_smart_configuration_and_the_capability_statement(fhir: TestClient) -> None:
    configuration = fhir.get("/fhir/.well-known/smart-configuration").json()
    assert configuration["token_endpoint"] == TOKEN_URL
    assert configuration["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert {"RS384", "ES384"} <= set(
        configuration["token_endpoint_auth_signing_alg_values_supported"]
    )
    assert configuration["grant_types_supported"] == ["client_credentials"]
    assert configuration["capabilities"] == ["client-confidential-asymmetric"]
    assert "system/Task.rus" in configuration["scopes_supported"]
    assert "system/Referral.cr" in configuration["scopes_supported"]

    security = fhir.get("/fhir/metadata").json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    # Discovery is the .well-known document: the oauth-uris extension would need an
    # authorize endpoint, which Backend Services lack (HAPI's validator refuses it without).
    assert "extension" not in security
    assert ".well-known/smart-configuration" in security["service"][0]["text"]
