"""Health endpoints (``adapters/runtime/health.py``): live always answers, ready runs its
checks at most once per ttl and says which one failed; the FastAPI routes and the metrics
port's WSGI app answer the same."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from adapters.kafka_security import KafkaCredentials
from adapters.runtime import metrics
from adapters.runtime.health import (
    READY_PATH,
    Readiness,
    database_answers,
    health_routes,
    health_wsgi,
    kafka_answers,
)
from tests.conftest import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def counting(result: tuple[bool, str], calls: list[str], name: str) -> Callable[[], Any]:
    def check() -> tuple[bool, str]:
        calls.append(name)
        return result

    return check


def test_ready_is_cached_for_its_ttl_and_checked_again_after() -> None:
    calls: list[str] = []
    clock = Clock()
    readiness = Readiness({"kafka": counting((True, "ok"), calls, "kafka")}, ttl=1.5, clock=clock)
    assert readiness.report() == (True, {"kafka": "ok"})
    clock.now = 1.0
    readiness.report()
    assert calls == ["kafka"]
    clock.now = 1.6
    readiness.report()
    assert calls == ["kafka", "kafka"]


def test_one_failing_or_raising_check_makes_it_not_ready_and_is_named() -> None:
    def raises() -> tuple[bool, str]:
        raise ConnectionRefusedError("secret://url")

    down = "unreachable: OperationalError"
    readiness = Readiness(
        {"kafka": lambda: (True, "ok"), "database": lambda: (False, down), "other": raises}
    )
    ready, checks = readiness.report()
    assert not ready
    assert checks == {
        "kafka": "ok",
        "database": "unreachable: OperationalError",
        "other": "ConnectionRefusedError",  # the class, never the message
    }


def _app(readiness: Readiness) -> TestClient:
    app = FastAPI()
    app.include_router(health_routes(readiness))
    return TestClient(app)


def test_fastapi_routes_answer_200_when_ready_and_503_when_not() -> None:
    state = {"ok": True}
    client = _app(Readiness({"database": lambda: (state["ok"], "down")}, ttl=0))
    assert client.get("/health/live").json() == {"status": "live"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}
    state["ok"] = False
    not_ready = client.get("/health/ready")
    assert not_ready.status_code == 503
    assert not_ready.json() == {"status": "not ready", "checks": {"database": "down"}}


def test_the_wsgi_wrapper_answers_health_paths_and_passes_the_rest_on() -> None:
    seen: list[str] = []

    def inner(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.append(environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b"metrics"]

    statuses: list[str] = []
    app = health_wsgi(Readiness({"kafka": lambda: (False, "unreachable")}), inner)
    body = b"".join(app({"PATH_INFO": READY_PATH}, lambda s, h: statuses.append(s)))
    assert statuses == ["503 Service Unavailable"]
    assert json.loads(body)["checks"] == {"kafka": "unreachable"}
    assert b"".join(app({"PATH_INFO": "/metrics"}, lambda s, h: statuses.append(s))) == b"metrics"
    assert seen == ["/metrics"]


def test_the_metrics_port_serves_health_beside_metrics() -> None:
    port = free_port()
    readiness = Readiness({"database": lambda: (True, "ok")})
    metrics.start_metrics("health-test", "0", host="127.0.0.1", port=port, readiness=readiness)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        assert client.get("/health/live").json() == {"status": "live"}
        assert client.get("/health/ready").json()["status"] == "ready"
        assert "brug_build_info" in client.get("/metrics").text


def test_real_checks_report_an_unreachable_broker_and_database() -> None:
    closed = free_port()  # nothing listens there
    kafka_ok, kafka_detail = kafka_answers(f"127.0.0.1:{closed}", KafkaCredentials())()
    db_ok, db_detail = database_answers(f"postgresql://u:p@127.0.0.1:{closed}/x")()
    assert (kafka_ok, db_ok) == (False, False)
    assert kafka_detail.startswith("unreachable")
    assert db_detail.startswith("unreachable") and "p@" not in db_detail
