"""Composition root of the social gateway (the welfare side's HTTPS edge, for case systems
without Kafka): ``create_app`` reads the client registry, makes the ledger's engine and
the broker, and assembles the FastAPI app from ``routes/details.py`` (what a case system
reads) and ``routes/reports.py`` (the status and signals it POSTs).

Nothing is read or connected at import: the engine connects on first use, the broker when
the app starts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from starlette.exceptions import HTTPException

from adapters import smart
from adapters.audit_http import audit_requests
from adapters.clients import load_clients
from adapters.database import make_async_engine
from adapters.ratelimit import RateLimiter
from adapters.runtime import configure_logging, instrument_http, make_broker
from adapters.runtime.health import health_routes, readiness_for
from adapters.runtime.http import limit_bodies
from adapters.runtime.service import READY_LOG_LINE, brug_version, make_asyncapi
from contracts.cloudevents import CloudEvent
from contracts.events.status import ReferralStatusReported, SignalRaised
from services.social_gateway import SERVICE
from services.social_gateway.edge import SocialEdge
from services.social_gateway.problems import (
    Problem,
    http_problem,
    invalid_body,
    problem_document,
    problem_response,
)
from services.social_gateway.routes import details, reports
from services.social_gateway.settings import SocialGatewaySettings

log = structlog.get_logger(f"brug.{SERVICE}")


def create_app(settings: SocialGatewaySettings | None = None) -> FastAPI:
    settings = settings or SocialGatewaySettings()
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    clients = load_clients(settings.clients_path)
    edge = SocialEdge(
        settings=settings,
        clients=clients,
        engine=make_async_engine(settings.database_url),
        authenticator=smart.authenticator(settings, clients),
        limiter=RateLimiter(settings.rate_limit, "social"),
    )
    broker = make_broker(settings, service=SERVICE)
    app = FastAPI(title="Brug social gateway", version=brug_version(), lifespan=_lifespan)
    app.state.social_edge = edge
    app.state.broker = broker
    app.state.asyncapi = social_asyncapi(broker)
    limit_bodies(app, settings.max_body_bytes, _refusal, admit=lambda r: _admit(edge, r))
    audit_requests(app, edge.engine, "social")  # the person named; every 401 audited
    instrument_http(app, SERVICE)  # before the routes: it adds a router-wide dependency
    app.include_router(health_routes(readiness_for(settings)))
    app.include_router(details.router)
    app.include_router(reports.router)
    # Starlette types a handler as taking any Exception; these take their own kind only.
    app.add_exception_handler(Problem, problem_response)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, invalid_body)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, http_problem)  # type: ignore[arg-type]
    return app


def _refusal(_: Request, status: int, detail: str) -> Response:
    return problem_document(Problem(status, "Content Too Large", detail))


async def _admit(edge: SocialEdge, request: Request) -> Response | None:
    """Every POST is a case system's: its token is checked before the body is read."""
    try:
        edge.authenticate(request)
    except Problem as problem:
        return problem_document(problem)
    return None


def social_asyncapi(broker: KafkaBroker) -> AsyncAPI:
    """The AsyncAPI document of what the edge's POSTs become (``brug contracts generate``):
    events in the outbox for the organisation's status topic, which the relay publishes."""
    # Declared only: the relay publishes, this broker never does.
    broker.publisher(
        "brug.social.status.{organisation_id}.v1",
        title="brug.social.status.{organisation_id}.v1",
        description="A status or signal a case system POSTed. Key: referral id.",
        schema=CloudEvent[ReferralStatusReported | SignalRaised],
    )
    return make_asyncapi(
        broker, service=SERVICE, description="What case systems POST, put on their status topic."
    )


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    edge: SocialEdge = app.state.social_edge
    broker: KafkaBroker = app.state.broker
    await broker.start()
    log.info(READY_LOG_LINE, port=edge.settings.social_port)
    yield
    await broker.stop()
    await edge.engine.dispose()
