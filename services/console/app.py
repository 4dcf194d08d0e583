"""Composition root of the operator console: ``create_app`` reads who may log in, makes the
ledger's engines, the sessions, the broker of its Kafka side and the templates, and
assembles the FastAPI app from the page routers (``pages/``).

Server-rendered HTML (Jinja2) with a little JavaScript for refreshing; no build step.
Operators see metadata only; a privacy officer may reveal a referral's details with a
reason, and that reveal is audited. Nothing is read or connected at import: the engines
connect on first use, the broker and the gauge loop when the app starts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from adapters.database import make_async_engine, make_engine
from adapters.ledger.timeline import format_duration
from adapters.operators import WatchedOperators
from adapters.runtime import configure_logging, instrument_http, make_broker
from adapters.runtime.health import health_routes, readiness_for
from adapters.runtime.http import limit_bodies
from adapters.runtime.service import READY_LOG_LINE, brug_version, make_asyncapi
from services.console import SERVICE
from services.console.auth import Forbidden, NotSignedIn, Sessions
from services.console.charts import sparkline
from services.console.dead_letters import dead_letter_router
from services.console.flows import FlowsCache
from services.console.gauges import export_gauges
from services.console.pages import flows, health, login, monitor, privacy, referral, stuck
from services.console.retention import sweep_retention
from services.console.settings import ConsoleSettings
from services.console.throttle import LoginThrottle, utc_now
from services.console.web import Console

HERE = Path(__file__).parent
log = structlog.get_logger(f"brug.{SERVICE}")


def create_app(
    settings: ConsoleSettings | None = None, clock: Callable[[], datetime] = utc_now
) -> FastAPI:
    """``clock``: what sessions and the login throttle take as now (tests move it on)."""
    settings = settings or ConsoleSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    console = build_console(settings, clock)
    broker = make_broker(settings, service=SERVICE)
    broker.include_router(dead_letter_router(console.engine, console.sealer))
    app = FastAPI(title="Brug operator console", version=brug_version(), lifespan=_lifespan)
    app.state.console = console
    app.state.broker = broker
    app.state.asyncapi = console_asyncapi(broker)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    limit_bodies(app, settings.max_body_bytes, _refusal, admit=lambda r: _admit(console, r))
    instrument_http(app, SERVICE)  # before the routes: it adds a router-wide dependency
    app.middleware("http")(_no_caching_and_framing)
    # Starlette types a handler as taking any Exception; each of these takes one kind.
    app.add_exception_handler(NotSignedIn, _to_login)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _bad_request)  # type: ignore[arg-type]
    app.add_exception_handler(Forbidden, _forbidden)  # type: ignore[arg-type]
    app.include_router(health_routes(readiness_for(settings, kafka=settings.console_kafka_side)))
    for pages in (login, flows, health, referral, stuck, privacy, monitor):
        app.include_router(pages.router)
    return app


def build_console(settings: ConsoleSettings, clock: Callable[[], datetime] = utc_now) -> Console:
    """The pages' shared dependencies: the operators file is read now, so a bad one fails
    the start (and again whenever it changes), and so does a missing dead-letter key
    (``BRUG_DEAD_LETTER_KEYS``); the engines connect lazily."""
    sealer = settings.dead_letter_sealer()
    sealer.require()
    engine = make_async_engine(settings.database_url)
    operators = WatchedOperators(settings.operators_path)
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(
        sparkline=sparkline, duration=format_duration, version=brug_version()
    )
    return Console(
        settings=settings,
        operators=operators,
        engine=engine,
        sync_engine=make_engine(settings.database_url),
        sessions=Sessions(
            engine,
            operators,
            idle=timedelta(minutes=settings.session_idle_minutes),
            lifetime=timedelta(hours=settings.session_lifetime_hours),
            clock=clock,
        ),
        login_throttle=LoginThrottle(
            engine,
            per_user=settings.login_failures_per_user,
            per_address=settings.login_failures_per_address,
            window=timedelta(minutes=settings.login_window_minutes),
            clock=clock,
        ),
        flows_cache=FlowsCache(settings.flows_cache_seconds),
        templates=templates,
        sealer=sealer,
    )


def console_asyncapi(broker: KafkaBroker) -> AsyncAPI:
    """The AsyncAPI document of the console's Kafka side (``brug contracts generate``)."""
    return make_asyncapi(
        broker, service=SERVICE, description="Keeps dead letters where operators can act on them."
    )


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    console: Console = app.state.console
    async with contextlib.AsyncExitStack() as kafka_side:
        if console.settings.console_kafka_side:
            await kafka_side.enter_async_context(_kafka_side(app.state.broker, console))
        log.info(READY_LOG_LINE, port=console.settings.console_port)
        yield
    await console.engine.dispose()
    console.sync_engine.dispose()


@asynccontextmanager
async def _kafka_side(broker: KafkaBroker, console: Console) -> AsyncIterator[None]:
    """The dead-letter consumer and the gauge loop, from start-up until shutdown."""
    await broker.start()
    gauges = asyncio.create_task(export_gauges(console))
    retention = asyncio.create_task(sweep_retention(console))
    try:
        yield
    finally:
        for loop in (gauges, retention):
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        await broker.stop()


async def _no_caching_and_framing(request: Request, call_next: Any) -> Response:
    response: Response = await call_next(request)
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
    )
    return response


def _refusal(_: Request, status: int, detail: str) -> Response:
    body = {"type": "about:blank", "title": "Content Too Large", "status": status, "detail": detail}
    return JSONResponse(body, status, media_type="application/problem+json")


async def _admit(console: Console, request: Request) -> Response | None:
    """A form is read only from a signed-in operator (the login form excepted): the
    session is checked before the body (the page checks it again, with the CSRF token)."""
    if request.url.path == "/login":
        return None
    try:
        await console.sessions.current(request)
    except NotSignedIn:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
    return None


async def _to_login(request: Request, _: NotSignedIn) -> Response:
    return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)


async def _bad_request(request: Request, invalid: RequestValidationError) -> Response:
    where = ".".join(str(part) for part in invalid.errors()[0]["loc"])
    console: Console = request.app.state.console
    return console.page(
        request, "message.html", None, status=400, title="Not understood", text=where
    )


async def _forbidden(request: Request, refused: Forbidden) -> Response:
    console: Console = request.app.state.console
    return console.page(
        request, "message.html", None, status=403, title="Not allowed", text=refused.detail
    )
