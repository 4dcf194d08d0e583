"""Composition root of the FHIR gateway (the medical edge): ``create_app`` reads the client
registry, the directory, the postcode and theme tables, makes the ledger's engine and the
broker, and assembles the FastAPI app from the route modules and the Kafka inbound router.

Nothing is read or connected at import: the engine connects on first use, the broker when
the app starts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import Response
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import smart
from adapters.audit_http import audit_requests
from adapters.clients import ClientKind, ClientRegistry, load_clients
from adapters.database import make_async_engine
from adapters.directory import load_directory
from adapters.fhir.outcomes import FhirProblem
from adapters.postcodes import load_postcode_table
from adapters.ratelimit import RateLimiter
from adapters.runtime import configure_logging, instrument_http, make_broker
from adapters.runtime.health import health_routes, readiness_for
from adapters.runtime.http import limit_bodies
from adapters.runtime.service import brug_version, make_asyncapi
from contracts.mappings import wor_theme_table
from services.fhir_gateway.edge import FhirEdge
from services.fhir_gateway.inbound import inbound_router
from services.fhir_gateway.reads import Reads
from services.fhir_gateway.routes import audit_events, auth, reads, submit, withdraw
from services.fhir_gateway.settings import GatewaySettings
from services.fhir_gateway.submission import SERVICE, Submissions
from services.fhir_gateway.subscriptions import subscription_routes
from services.fhir_gateway.web import fhir_response
from services.fhir_gateway.withdrawal import Withdrawals

log = structlog.get_logger(f"brug.{SERVICE}")


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    edge = build_edge(settings)
    broker = make_broker(settings, service=SERVICE)
    broker.include_router(inbound_router(edge))
    app = FastAPI(title="Brug FHIR gateway", version=brug_version(), lifespan=_lifespan)
    app.state.fhir_edge = edge
    app.state.broker = broker
    app.state.asyncapi = fhir_asyncapi(broker)
    limit_bodies(app, settings.max_body_bytes, _refusal, admit=lambda r: _admit(edge, r))
    audit_requests(app, edge.engine, "fhir")  # the person named; every 401 audited
    instrument_http(app, SERVICE)  # before the routes: it adds a router-wide dependency
    app.include_router(
        subscription_routes(
            authenticate=lambda request: edge.authenticate(request, ClientKind.GP),
            respond=fhir_response,
            engine=edge.engine,
            base_url=settings.fhir_base_url,
            max_per_client=settings.max_subscriptions_per_client,
        )
    )
    app.include_router(health_routes(readiness_for(settings)))
    for routes in (auth.router, reads.router, submit.router, withdraw.router, audit_events.router):
        app.include_router(routes)
    # Starlette types a handler as taking any Exception; this one takes FhirProblem only.
    app.add_exception_handler(FhirProblem, _problem)  # type: ignore[arg-type]
    return app


def build_edge(settings: GatewaySettings) -> FhirEdge:
    """The handlers' shared dependencies: registries and tables read now, so a bad file
    fails the start; the engine connects lazily."""
    engine = make_async_engine(settings.database_url)
    clients = load_clients(settings.clients_path)
    return FhirEdge(
        settings=settings,
        clients=clients,
        directory=load_directory(settings.directory_path),
        postcodes=load_postcode_table(settings.postcode_table_path),
        themes=wor_theme_table(),
        engine=engine,
        submissions=Submissions(
            engine=engine,
            retention=timedelta(days=settings.details_retention_days),
            base_url=settings.fhir_base_url,
        ),
        reads=Reads(engine=engine, base_url=settings.fhir_base_url),
        withdrawals=Withdrawals(engine=engine),
        authenticator=smart.authenticator(settings, clients),
        limiter=RateLimiter(settings.rate_limit, "fhir"),
        tokens=_token_service(settings, clients, engine),
        token_limiter=RateLimiter(settings.token_rate_limit, "fhir-token"),
    )


def _token_service(
    settings: GatewaySettings, clients: ClientRegistry, engine: AsyncEngine
) -> smart.TokenService | None:
    if settings.token_signing_key_file is None:
        return None
    return smart.TokenService(
        clients=clients,
        signing_key=smart.load_signing_key(settings.token_signing_key_file),
        token_endpoint=f"{settings.fhir_base_url}/auth/token",
        issuer=settings.token_issuer,
        engine=engine,
    )


def fhir_asyncapi(broker: KafkaBroker) -> AsyncAPI:
    """The AsyncAPI document of the edge's Kafka side (``brug contracts generate``)."""
    return make_asyncapi(
        broker,
        service=SERVICE,
        description="The medical edge's Kafka side: every accepted referral, minimised.",
    )


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    edge: FhirEdge = app.state.fhir_edge
    broker: KafkaBroker = app.state.broker
    await broker.start()
    log.info(
        "brug service ready", port=edge.settings.fhir_port, directory_version=edge.directory.version
    )
    yield
    await broker.stop()
    await edge.engine.dispose()


async def _problem(request: Request, problem: FhirProblem) -> Response:
    return fhir_response(request, problem.status, problem.outcome(), problem.headers)


def _refusal(request: Request, status: int, diagnostics: str) -> Response:
    """What the body limit answers: an OperationOutcome ``too-long``."""
    return fhir_response(request, status, FhirProblem(status, "too-long", diagnostics).outcome())


async def _admit(edge: FhirEdge, request: Request) -> Response | None:
    """Every request with a body is a GP system's: its token is checked before the body
    is read (the routes reuse the answer). The token endpoint takes a form instead, and
    limits token requests itself."""
    if request.url.path == smart.TOKEN_PATH:
        return None
    try:
        edge.authenticate(request)
    except FhirProblem as problem:
        return await _problem(request, problem)
    return None
