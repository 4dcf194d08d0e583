"""Every HTTP service answers /health/live and /health/ready in-process, against the real
PostgreSQL: ready names the broker that does not answer (here a port nobody listens on)
and turns 200 once both answer."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.console.app import create_app as create_console_app
from services.console.settings import ConsoleSettings
from services.fhir_gateway.app import create_app as create_fhir_app
from services.fhir_gateway.settings import GatewaySettings
from services.social_gateway.app import create_app as create_social_app
from services.social_gateway.settings import SocialGatewaySettings
from tests.conftest import free_port

pytestmark = pytest.mark.integration  # the real PostgreSQL


def _apps(database_url: str, bootstrap: str) -> dict[str, FastAPI]:
    common = {"database_url": database_url, "kafka_bootstrap_servers": bootstrap}
    return {
        "fhir_gateway": create_fhir_app(GatewaySettings(**common)),
        "social_gateway": create_social_app(SocialGatewaySettings(**common)),
        "console": create_console_app(ConsoleSettings(**common, console_kafka_side=True)),
    }


def test_without_a_broker_each_edge_is_live_but_not_ready(handler_database: str) -> None:
    for name, app in _apps(handler_database, f"127.0.0.1:{free_port()}").items():
        client = TestClient(app)  # no lifespan: the broker is not started
        assert client.get("/health/live").status_code == 200, name
        ready = client.get("/health/ready")
        assert ready.status_code == 503, name
        checks = ready.json()["checks"]
        assert checks["database"] == "ok", name
        assert checks["kafka"].startswith("unreachable"), name


def test_with_broker_and_database_each_edge_is_ready(
    handler_database: str, kafka_topics: str
) -> None:
    for name, app in _apps(handler_database, kafka_topics).items():
        ready = TestClient(app).get("/health/ready")
        assert ready.status_code == 200, (name, ready.text)
        assert ready.json() == {"status": "ready", "checks": {"kafka": "ok", "database": "ok"}}
