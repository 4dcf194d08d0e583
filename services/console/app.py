"""The operator console: message flows, one referral end to end, what is stuck, health.

Server-rendered HTML (Jinja2) with a little JavaScript for refreshing; no build step.
Its Kafka side keeps every dead letter from ``brug.deadletter.v1`` in the ledger, where
operators inspect, replay or discard them. Operators see metadata only; a privacy officer
may reveal a referral's details with a reason, and that reveal is audited.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import structlog
from fastapi import FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from kafka.errors import KafkaError
from prometheus_client import Gauge
from sqlalchemy import Connection

from adapters.database import make_async_engine, make_engine
from adapters.ledger.operations import Operations
from adapters.ledger.repository import Ledger
from adapters.ledger.timeline import Timeline, format_duration, referral_timeline
from adapters.operators import load_operators
from adapters.runtime import configure_logging, instrument_http, make_broker
from adapters.runtime.kafka import consumer_group
from adapters.runtime.service import READY_LOG_LINE, brug_version, make_asyncapi
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.events.deadletter import DeadLetter
from services.console import actions
from services.console.auth import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Forbidden,
    LoginThrottle,
    NotSignedIn,
    Sessions,
    SignedIn,
    check_csrf,
    check_login_csrf,
    new_login_token,
)
from services.console.charts import sparkline
from services.console.flows import (
    Flows,
    FlowsCache,
    infrastructure_health,
    ledger_counts,
    service_health,
)
from services.console.settings import ConsoleSettings

SERVICE = "console"
HERE = Path(__file__).parent

settings = ConsoleSettings()
configure_logging(SERVICE, settings.log_level, settings.log_format)
log = structlog.get_logger(f"brug.{SERVICE}")
operators = load_operators(settings.operators_path)
engine = make_async_engine(settings.database_url)
# Replays use kafka-python and a plain engine: the same code serves `brug dlq`.
sync_engine = make_engine(settings.database_url)
sessions = Sessions(engine, timedelta(minutes=settings.session_idle_minutes))
login_throttle = LoginThrottle()
flows_cache = FlowsCache(settings.flows_cache_seconds)
broker = make_broker(settings, service=SERVICE)
asyncapi = make_asyncapi(
    broker, service=SERVICE, description="Keeps dead letters where operators can act on them."
)
LAG = Gauge(
    "brug_consumer_lag",
    "Messages a consumer group has not yet handled, per topic (the console's view of Kafka).",
    ["group", "topic"],
)
PARKED = Gauge(
    "brug_dead_letters_parked", "Dead letters waiting for an operator, per reason.", ["reason"]
)
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals.update(sparkline=sparkline, duration=format_duration, version=brug_version())


@broker.subscriber(topics.DEAD_LETTER, group_id=consumer_group(SERVICE))
async def keep_dead_letter(event: CloudEvent[DeadLetter]) -> None:
    async with engine.begin() as connection:
        new = await connection.run_sync(
            lambda c: Operations(c).record_dead_letter(event.id, event.data)
        )
    if new:
        log.warning(
            "dead letter parked for operators",
            dead_letter_id=event.id,
            reason=event.data.reason,
            service=event.data.service,
        )


async def _export_gauges() -> None:
    """Keep lag and parked dead letters current on /metrics, for alerting without a browser."""
    while True:
        try:
            flows = await _flows()
        except Exception as error:  # a failed look must not stop the loop
            log.warning("flows not measured", error_type=type(error).__name__)
        else:
            for lag in flows.lag:
                LAG.labels(lag.group, lag.topic).set(lag.lag)
            for reason in {reason for _, reason in flows.dead_letters}:
                PARKED.labels(reason).set(flows.dead_letters.get(("parked", reason), 0))
        await asyncio.sleep(settings.gauges_poll_seconds)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    await broker.start()
    gauges = asyncio.create_task(_export_gauges())
    log.info(READY_LOG_LINE, port=settings.console_port)
    yield
    gauges.cancel()
    await broker.stop()
    await engine.dispose()
    sync_engine.dispose()


app = FastAPI(title="Brug operator console", version=brug_version(), lifespan=lifespan)
app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
instrument_http(app, SERVICE)


@app.middleware("http")
async def _no_caching_and_framing(request: Request, call_next: Any) -> Response:
    response: Response = await call_next(request)
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
    )
    return response


@app.exception_handler(NotSignedIn)
async def _to_login(request: Request, _: NotSignedIn) -> Response:
    return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)


@app.exception_handler(RequestValidationError)
async def _bad_request(request: Request, invalid: RequestValidationError) -> Response:
    where = ".".join(str(part) for part in invalid.errors()[0]["loc"])
    return _page(request, "message.html", None, status=400, title="Not understood", text=where)


@app.exception_handler(Forbidden)
async def _forbidden(request: Request, refused: Forbidden) -> Response:
    return _page(
        request, "message.html", None, status=403, title="Not allowed", text=refused.detail
    )


def _page(
    request: Request, template: str, signed_in: SignedIn | None, status: int = 200, **values: Any
) -> HTMLResponse:
    return templates.TemplateResponse(
        request, template, {"me": signed_in, "now": datetime.now(UTC), **values}, status_code=status
    )


# Login --------------------------------------------------------------------------------


@app.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "/flows", failed: bool = False) -> Response:
    token = new_login_token()
    response = _page(request, "login.html", None, next=_local(next), token=token, failed=failed)
    response.set_cookie(
        LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=settings.secure_cookies
    )
    return response


@app.post("/login")
async def login(
    request: Request,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/flows",
) -> Response:
    check_login_csrf(request, csrf)
    wait = login_throttle.blocked_for(username, time.monotonic())
    if wait > 0:
        log.warning("console login throttled")
        raise Forbidden(f"Too many failed logins for this user; try again in {wait / 60:.0f} min.")
    operator = await asyncio.to_thread(operators.authenticate, username, password)
    if operator is None:
        login_throttle.failed(username, time.monotonic())
        log.warning("console login refused")
        return RedirectResponse(f"/login?failed=1&next={quote(_local(next))}", status_code=303)
    login_throttle.succeeded(username)
    token = await sessions.open(operator)
    log.info("console login", operator=operator.username, role=operator.role.value)
    response = RedirectResponse(_local(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
        max_age=settings.session_idle_minutes * 60 * 16,  # the server decides expiry
    )
    response.delete_cookie(LOGIN_COOKIE)
    return response


@app.post("/logout")
async def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    me = await sessions.current(request)
    check_csrf(me, csrf)
    await sessions.close(me)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


def _local(target: str) -> str:
    """Only paths on this console: a login link must not send an operator elsewhere."""
    return target if target.startswith("/") and not target.startswith("//") else "/flows"


# Flows and health ---------------------------------------------------------------------


@app.get("/")
async def home() -> Response:
    return RedirectResponse("/flows", status_code=303)


@app.get("/flows", response_class=HTMLResponse)
async def flows_page(request: Request, fragment: bool = False) -> Response:
    me = await sessions.current(request)
    flows = await _flows()
    return _page(request, "flows_body.html" if fragment else "flows.html", me, flows=flows)


async def _flows() -> Flows:
    """Kafka's figures and the ledger's; a broker that does not answer is shown, not a 500."""
    problem = ""
    try:
        topic_flows, lag = await flows_cache.kafka(settings.kafka_bootstrap_servers)
    except (KafkaError, OSError) as error:
        topic_flows, lag = [], []
        problem = f"Kafka did not answer ({type(error).__name__}); see Health."
    async with engine.connect() as connection:
        dead, webhooks = await connection.run_sync(ledger_counts)
    return Flows(topic_flows, lag, dead, webhooks, datetime.now(UTC), problem)


@app.get("/health", response_class=HTMLResponse)
async def health_page(request: Request) -> Response:
    me = await sessions.current(request)
    services = await asyncio.gather(
        *(service_health(name, url) for name, url in sorted(settings.service_metrics_urls.items()))
    )
    infrastructure = await infrastructure_health(
        settings.kafka_bootstrap_servers, settings.database_url.replace("+asyncpg", "+psycopg")
    )
    return _page(request, "health.html", me, services=services, infrastructure=infrastructure)


# One referral -------------------------------------------------------------------------


@app.get("/referrals", response_class=HTMLResponse)
async def find_referral(request: Request, q: str = "") -> Response:
    me = await sessions.current(request)
    if not q.strip():
        return _page(request, "find.html", me, q=q, missing=False)
    async with engine.connect() as connection:
        found = await connection.run_sync(lambda c: Operations(c).find_referral(q))
    if found is None:
        return _page(request, "find.html", me, q=q, missing=True, status=404)
    return RedirectResponse(f"/referrals/{found}", status_code=303)


@app.get("/referrals/{referral_id}", response_class=HTMLResponse)
async def referral_page(request: Request, referral_id: uuid.UUID) -> Response:
    me = await sessions.current(request)
    timeline = await _audited_timeline(me, referral_id, "viewed-timeline", {})
    return _page(request, "referral.html", me, timeline=timeline, details=None, done=_done(request))


@app.post("/referrals/{referral_id}/reveal", response_class=HTMLResponse)
async def reveal_details(
    request: Request,
    referral_id: uuid.UUID,
    reason: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    me = await _revealer(request, csrf, reason)

    def read(connection: Connection) -> tuple[Timeline | None, dict[str, Any] | None]:
        _audit(connection, me, "revealed-details", referral_id, {"reason": reason.strip()[:500]})
        return referral_timeline(connection, referral_id), Ledger(connection).details(referral_id)

    async with engine.begin() as connection:
        timeline, details = await connection.run_sync(read)
    if timeline is None:
        return _page(request, "find.html", me, q=str(referral_id), missing=True, status=404)
    log.info("details revealed", referral_id=str(referral_id), operator=me.username)
    return _page(request, "referral.html", me, timeline=timeline, details=details or {}, done="")


async def _revealer(request: Request, csrf: str, reason: str) -> SignedIn:
    """Personal data is shown only to a privacy officer who says why (the reason is audited)."""
    me = await sessions.current(request)
    check_csrf(me, csrf)
    if not me.may_reveal:
        raise Forbidden("Only a privacy officer may reveal personal data.")
    if len(reason.strip()) < 10:
        raise Forbidden("Give the reason for revealing (at least a short sentence); it is audited.")
    return me


async def _audited_timeline(
    me: SignedIn, referral_id: uuid.UUID, action: str, detail: dict[str, Any]
) -> Timeline:
    def read(connection: Connection) -> Timeline | None:
        timeline = referral_timeline(connection, referral_id)
        if timeline is not None:
            _audit(connection, me, action, referral_id, detail)
        return timeline

    async with engine.begin() as connection:
        timeline = await connection.run_sync(read)
    if timeline is None:
        raise Forbidden(f"No referral {referral_id} in the ledger.")
    return timeline


def _audit(
    connection: Connection,
    me: SignedIn,
    action: str,
    referral_id: uuid.UUID | None,
    detail: dict[str, Any],
) -> None:
    Ledger(connection).audit(actor=me.actor, action=action, referral_id=referral_id, detail=detail)


# What is stuck ------------------------------------------------------------------------


@app.get("/stuck", response_class=HTMLResponse)
async def stuck_page(request: Request) -> Response:
    me = await sessions.current(request)

    def read(connection: Connection) -> dict[str, Any]:
        operations = Operations(connection)
        return {
            "dead_letters": operations.dead_letters("parked"),
            "resolved": [
                letter
                for state in ("replayed", "discarded")
                for letter in operations.dead_letters(state, limit=20)
            ],
            "deliveries": operations.parked_deliveries(),
            "unroutable": operations.unroutable_referrals(),
            "overdue": operations.overdue_referrals(),
        }

    async with engine.connect() as connection:
        stuck = await connection.run_sync(read)
    return _page(request, "stuck.html", me, done=_done(request), **stuck)


@app.get("/dead-letters/{dead_letter_id}", response_class=HTMLResponse)
async def dead_letter_page(request: Request, dead_letter_id: str) -> Response:
    me = await sessions.current(request)
    async with engine.connect() as connection:
        letter = await connection.run_sync(lambda c: Operations(c).dead_letter(dead_letter_id))
    if letter is None:
        raise Forbidden("No such dead letter.")
    return _page(request, "dead_letter.html", me, letter=letter, value=None)


@app.post("/dead-letters/{dead_letter_id}/reveal", response_class=HTMLResponse)
async def reveal_dead_letter(
    request: Request,
    dead_letter_id: str,
    reason: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    me = await _revealer(request, csrf, reason)

    def read(connection: Connection) -> Any:
        letter = Operations(connection).dead_letter(dead_letter_id)
        if letter is not None:
            detail = {"reason": reason.strip()[:500], "dead_letter_id": dead_letter_id}
            _audit(connection, me, "revealed-dead-letter", letter.referral_id, detail)
        return letter

    async with engine.begin() as connection:
        letter = await connection.run_sync(read)
    if letter is None:
        raise Forbidden("No such dead letter.")
    return _page(request, "dead_letter.html", me, letter=letter, value=letter.original_value)


# Each action takes (the thing's id, actor=, note=) and answers an ActionResult.
DEAD_LETTER_ACTIONS = {
    "replay": partial(actions.replay_dead_letter, sync_engine, settings.kafka_bootstrap_servers),
    "discard": partial(actions.discard_dead_letter, sync_engine),
}
DELIVERY_ACTIONS = {
    "requeue": partial(actions.requeue_delivery, sync_engine),
    "discard": partial(actions.discard_delivery, sync_engine),
}


@app.post("/dead-letters/{dead_letter_id}/{action}")
async def act_on_dead_letter(
    request: Request,
    dead_letter_id: str,
    action: str,
    note: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    chosen = DEAD_LETTER_ACTIONS.get(action)
    return await _act(request, csrf, chosen, dead_letter_id, note, "dead letter")


@app.post("/deliveries/{event_id}/{action}")
async def act_on_delivery(
    request: Request,
    event_id: str,
    action: str,
    note: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    chosen = DELIVERY_ACTIONS.get(action)
    return await _act(request, csrf, chosen, event_id, note, "webhook delivery")


async def _act(
    request: Request,
    csrf: str,
    chosen: Callable[..., actions.ActionResult] | None,
    target: str,
    note: str,
    kind: str,
) -> Response:
    me = await sessions.current(request)
    check_csrf(me, csrf)
    if chosen is None:
        raise Forbidden("Unknown action.")
    subject = f"{kind} {target}"
    try:
        result = await asyncio.to_thread(chosen, target, actor=me.actor, note=note)
    except actions.ActionRefused as refused:
        log.info("operator action refused", operator=me.username, subject=subject)
        raise Forbidden(f"Not done: {refused}.") from None
    log.info("operator action", operator=me.username, subject=subject, outcome=result.message)
    return RedirectResponse(f"/stuck?done={quote(f'{subject}: {result.message}')}", status_code=303)


def _done(request: Request) -> str:
    return request.query_params.get("done", "")[:300]
