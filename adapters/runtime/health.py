"""Health endpoints of every service: ``/health/live`` (the process answers) and
``/health/ready`` (its broker and its database answer), for a load balancer, an
orchestrator's probes, or ``bench/chaos.py`` waiting for a restarted replica.

- The FastAPI services (both edges, the console) serve them on their own port
  (``health_routes``); every service also serves them on its ``/metrics`` port
  (``health_wsgi``, wrapped around the Prometheus app), so the FastStream services have them
  without a web framework.
- Ready is two cheap checks, each bounded by a few seconds: a Kafka metadata request as
  this service's own principal, and ``SELECT 1`` plus the schema revision on PostgreSQL
  (an unmigrated database is not ready). The answer is kept for ``ttl`` seconds, so a probe
  every second costs at most one check of each, whoever asks and however often.
- The answer names each check and ``ok`` or what failed (an error's class, never a URL or a
  credential): ``{"status": "ready", "checks": {"kafka": "ok", "database": "ok"}}``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from adapters.database import database_health
from adapters.kafka_security import KafkaCredentials

LIVE_PATH = "/health/live"
READY_PATH = "/health/ready"
READY_TTL_SECONDS = 1.5
KAFKA_TIMEOUT_MS = 3000

Check = Callable[[], tuple[bool, str]]


class Readiness:
    """The named checks, run together at most once per ``ttl`` (thread-safe: the metrics
    server answers from its own threads, the web edges from worker threads)."""

    def __init__(
        self,
        checks: Mapping[str, Check],
        ttl: float = READY_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.checks = dict(checks)
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._answer: tuple[bool, dict[str, str]] | None = None
        self._checked_at = 0.0

    def report(self) -> tuple[bool, dict[str, str]]:
        """(ready, check name -> ``ok`` or what failed)."""
        with self._lock:
            if self._answer is None or self._clock() - self._checked_at >= self.ttl:
                self._answer = self._run()
                self._checked_at = self._clock()
            return self._answer

    def _run(self) -> tuple[bool, dict[str, str]]:
        results: dict[str, str] = {}
        for name, check in self.checks.items():
            try:
                ok, detail = check()
            except Exception as error:  # a check that raises is a failed check
                ok, detail = False, type(error).__name__
            results[name] = "ok" if ok else detail
        return all(value == "ok" for value in results.values()), results


def kafka_answers(bootstrap_servers: str, credentials: KafkaCredentials) -> Check:
    """A metadata request as this service's principal (allowed by its ACLs)."""

    def check() -> tuple[bool, str]:
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap_servers,
                client_id="brug-health",
                request_timeout_ms=KAFKA_TIMEOUT_MS,
                bootstrap_timeout_ms=KAFKA_TIMEOUT_MS,
                **credentials.kafka_python(),
            )
        except (KafkaError, OSError, ValueError) as error:
            return False, f"unreachable: {type(error).__name__}"
        try:
            admin.list_topics()
        except (KafkaError, OSError) as error:
            return False, f"not answering: {type(error).__name__}"
        finally:
            admin.close()
        return True, "ok"

    return check


def database_answers(database_url: str) -> Check:
    def check() -> tuple[bool, str]:
        ok, detail = database_health(database_url)
        return ok, "ok" if ok else detail

    return check


def readiness_for(settings: Any, *, kafka: bool = True) -> Readiness:
    """The readiness of a service with ``settings`` (a ``ServiceSettings``): its broker
    (unless ``kafka`` is off, as for a console without its Kafka side) and its database."""
    checks: dict[str, Check] = {}
    if kafka:
        checks["kafka"] = kafka_answers(
            settings.kafka_bootstrap_servers, settings.kafka_credentials
        )
    checks["database"] = database_answers(settings.database_url)
    return Readiness(checks)


def answer(readiness: Readiness | None, path: str) -> tuple[int, dict[str, Any]] | None:
    """(HTTP status, JSON body) for a health path, None for any other path."""
    if path == LIVE_PATH:
        return 200, {"status": "live"}
    if path != READY_PATH:
        return None
    if readiness is None:
        return 200, {"status": "ready", "checks": {}}
    return _ready_answer(readiness)


def _ready_answer(readiness: Readiness) -> tuple[int, dict[str, Any]]:
    ready, checks = readiness.report()
    return (200 if ready else 503), {"status": "ready" if ready else "not ready", "checks": checks}


def health_routes(readiness: Readiness) -> APIRouter:
    """``/health/live`` and ``/health/ready`` for a FastAPI app (no authentication: they say
    nothing but ok or the failing check's error class)."""
    router = APIRouter(tags=["health"])

    @router.get(LIVE_PATH, include_in_schema=False)
    async def live() -> JSONResponse:
        return JSONResponse({"status": "live"})

    @router.get(READY_PATH, include_in_schema=False)
    async def ready() -> JSONResponse:
        # The checks block (kafka-python, psycopg): off the event loop.
        status, body = await asyncio.to_thread(_ready_answer, readiness)
        return JSONResponse(body, status, headers={"Cache-Control": "no-store"})

    return router


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def health_wsgi(readiness: Readiness | None, inner: WsgiApp) -> WsgiApp:
    """``inner`` (the Prometheus app) with the health paths in front of it."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        found = answer(readiness, environ.get("PATH_INFO", ""))
        if found is None:
            return inner(environ, start_response)
        status, body = found
        payload = json.dumps(body).encode()
        reason = {200: "OK", 503: "Service Unavailable"}.get(status, "")
        start_response(
            f"{status} {reason}",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(payload))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [payload]

    return app
