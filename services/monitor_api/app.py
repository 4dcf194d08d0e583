"""Composition root of the monitor API (``GET /monitor/v1/…``, ``routes.py``): the
municipalities' read-only HTTPS edge on the monitor's figures. ``create_app`` reads the
client registry (municipality clients, ``adapters/clients.py``) and makes the ledger's
engine; the app only reads ``monitor_referrals`` and writes audit rows. No Kafka: it has no
principal and no broker.

Nothing is read or connected at import: the engine connects on first use.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException

from adapters import smart
from adapters.audit_http import audit_requests
from adapters.clients import load_clients
from adapters.database import make_async_engine
from adapters.ratelimit import RateLimiter
from adapters.runtime import configure_logging, instrument_http
from adapters.runtime.health import health_routes, readiness_for
from adapters.runtime.service import READY_LOG_LINE, brug_version
from services.monitor_api import SERVICE
from services.monitor_api.problems import (
    Problem,
    http_problem,
    invalid_request,
    problem_document,
    problem_response,
)
from services.monitor_api.routes import MonitorEdge, router
from services.monitor_api.settings import MonitorApiSettings

log = structlog.get_logger(f"brug.{SERVICE}")
RETRY_AFTER_SECONDS = 5


def create_app(settings: MonitorApiSettings | None = None) -> FastAPI:
    settings = settings or MonitorApiSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    clients = load_clients(settings.clients_path)
    edge = MonitorEdge(
        settings=settings,
        clients=clients,
        engine=make_async_engine(settings.database_url),
        authenticator=smart.authenticator(settings, clients),
        limiter=RateLimiter(settings.rate_limit, "monitor"),
    )
    app = FastAPI(
        title="Brug monitor API",
        version=brug_version(),
        description="Welzijn op Recept figures for municipalities: their own and the "
        "nation's, after disclosure control (docs/MONITOR.md). Aggregates only.",
        lifespan=_lifespan,
    )
    app.state.monitor_edge = edge
    audit_requests(app, edge.engine, "monitor")  # every 401 audited
    instrument_http(app, SERVICE)  # before the routes: it adds a router-wide dependency
    app.include_router(health_routes(readiness_for(settings, kafka=False)))
    app.include_router(router)
    # Starlette types a handler as taking any Exception; these take their own kind only.
    app.add_exception_handler(Problem, problem_response)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, http_problem)  # type: ignore[arg-type]
    app.add_exception_handler(OperationalError, _unavailable)  # type: ignore[arg-type]
    app.openapi = lambda: _without_422(app)  # type: ignore[method-assign]
    return app


def _without_422(app: FastAPI) -> dict[str, Any]:
    """The published document: a query it cannot read is a 400 here (``invalid_request``),
    never FastAPI's 422, so the 422 it documents by itself is left out."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for path in document.get("paths", {}).values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        schemas = document.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        app.openapi_schema = document
    return app.openapi_schema


async def _unavailable(_: Request, error: OperationalError) -> Response:
    log.warning("ledger unavailable", error=type(error).__name__)
    return problem_document(
        Problem(
            503,
            "Service Unavailable",
            "the monitor's figures cannot be read just now",
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    )


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    edge: MonitorEdge = app.state.monitor_edge
    log.info(READY_LOG_LINE, port=edge.settings.monitor_api_port)
    yield
    await edge.engine.dispose()
