"""The whole stack as separate processes on the session's real Kafka and PostgreSQL,
driven over HTTP and Kafka the way GP systems and welfare case systems use it."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.demo import sample_bundle
from deploy.devstack.stack import DevStack, StackConfig, dev_tokens
from tests.conftest import free_port

TOKENS = dev_tokens()
GP_AMSTERDAM = TOKENS["his-amsterdam-centrum"]
GP_LELYSTAD = TOKENS["his-lelystad-noord"]
WELFARE_AMSTERDAM = TOKENS["case-dynamo-amsterdam"]
WELFARE_LELYSTAD = TOKENS["case-welzijn-lelystad"]


@pytest.fixture(scope="session")
def stack(kafka_topics: str, database_url: str, infrastructure_dir: Path) -> Iterator[DevStack]:
    running = DevStack(
        StackConfig(
            state_dir=infrastructure_dir / "e2e",
            fhir_port=free_port(),
            social_port=free_port(),
            external_kafka=kafka_topics,
            external_database=database_url,
        )
    )
    running.start_services()
    yield running
    running.stop_services()


@pytest.fixture
def gp(stack: DevStack) -> Iterator[httpx.Client]:
    """The Amsterdam practice's GP system."""
    with httpx.Client(base_url=stack.fhir_base_url, timeout=30.0) as client:
        client.headers.update(
            {"Authorization": f"Bearer {GP_AMSTERDAM}", "Content-Type": "application/fhir+json"}
        )
        yield client


@pytest.fixture
def social(stack: DevStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.social_base_url, timeout=30.0) as client:
        yield client


def new_bundle() -> dict[str, Any]:
    return sample_bundle(f"WOR-{uuid.uuid4()}")


def resource(bundle: dict[str, Any], resource_type: str) -> dict[str, Any]:
    return next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type
    )


def without(bundle: dict[str, Any], resource_type: str) -> dict[str, Any]:
    changed = copy.deepcopy(bundle)
    changed["entry"] = [
        e for e in changed["entry"] if e["resource"]["resourceType"] != resource_type
    ]
    return changed


def task_of(reply: httpx.Response) -> dict[str, Any]:
    return next(
        e["resource"]
        for e in reply.json()["entry"]
        if e.get("resource", {}).get("resourceType") == "Task"
    )


def referral_id_of(task: dict[str, Any]) -> str:
    return str(
        next(i["value"] for i in task["identifier"] if i["system"] == "urn:brug:referral-id")
    )
