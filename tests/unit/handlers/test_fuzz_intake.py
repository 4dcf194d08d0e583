"""The FHIR-aware fuzzer in CI: 500 mutated sample Bundles (``tests/fuzzing.py``) posted
to the FHIR edge in-process, the real PostgreSQL behind; not one may get a 5xx, and
every refusal is an OperationOutcome. ``bench/fuzz_intake.py`` runs 10,000."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from deploy.demo import SAMPLE_GP_CLIENT
from deploy.devstack.stack import dev_tokens
from services.fhir_gateway.app import create_app
from services.fhir_gateway.settings import GatewaySettings
from tests.conftest import free_port
from tests.fuzzing import bundle_bodies

pytestmark = pytest.mark.integration  # the real PostgreSQL

HEADERS = {
    "Authorization": f"Bearer {dev_tokens()[SAMPLE_GP_CLIENT]}",
    "Content-Type": "application/fhir+json",
}
ANSWERS: set[int] = set()


@pytest.fixture(scope="module")
def gateway(handler_database: str) -> Iterator[TestClient]:
    settings_ = GatewaySettings(
        database_url=handler_database, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}"
    )
    yield TestClient(create_app(settings_), raise_server_exceptions=False)


@settings(
    max_examples=500,
    deadline=None,
    database=None,  # the same 500 in every run: a failure is reproducible from the seed
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(body=bundle_bodies())
def test_no_mutated_bundle_gets_a_5xx(gateway: TestClient, body: bytes) -> None:
    answer = gateway.post("/fhir", content=body, headers=HEADERS)

    assert answer.status_code < 500, (answer.status_code, answer.text[:300])
    ANSWERS.add(answer.status_code)
    if answer.status_code >= 400:
        assert answer.json()["resourceType"] == "OperationOutcome"


def test_the_fuzzer_reached_both_acceptance_and_refusal() -> None:
    """Run after the fuzz test (file order): mutations that keep a Bundle valid are
    accepted, the rest refused, so the strategy is neither too gentle nor too wild."""
    if not ANSWERS:
        pytest.skip("the fuzz test did not run")
    assert {201, 400} <= ANSWERS
