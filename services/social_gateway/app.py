"""The social edge over HTTPS, for case systems without Kafka:
``GET /social/v1/referrals/{id}`` (the minimised referral, for the assigned organisation
only), ``POST .../{id}/status`` and ``POST .../{id}/signals`` (put on the organisation's
status topic, exactly as a case system on the bus would).

A POST is checked against the ledger before it is published, so the sender hears at once
what the feedback service would refuse (403, 404, 409, 410); what passes is answered 202,
and the feedback service decides finally (a race with another event of the same referral
is answered on the problem topic). Errors are RFC 9457 problem documents: the social side
speaks plain JSON, not FHIR.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection

from adapters.clients import Client, ClientKind, Unauthenticated, authenticate_bearer, load_clients
from adapters.database import make_async_engine
from adapters.ledger.repository import Ledger, ReferralRow
from adapters.outbox import Outbox, cloudevent_message
from adapters.runtime import configure_logging, instrument_http, make_broker
from adapters.runtime.service import READY_LOG_LINE, brug_version, make_asyncapi
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.details import Published, ReferralDetails, StatusView
from contracts.events.status import (
    ReferralStatusReported,
    SignalRaised,
    SignalReport,
    StatusProblemCode,
    StatusReport,
)
from domain.referral import Referral, Report, verdict
from domain.status_machine import Verdict
from services.social_gateway.settings import SocialGatewaySettings

SERVICE = "social-gateway"
PROBLEM_JSON = "application/problem+json"

settings = SocialGatewaySettings()
configure_logging(SERVICE, settings.log_level, settings.log_format)
log = structlog.get_logger(f"brug.{SERVICE}")
clients = load_clients(settings.clients_path)
engine = make_async_engine(settings.database_url)
broker = make_broker(settings, service=SERVICE)
asyncapi = make_asyncapi(
    broker,
    service=SERVICE,
    description="What case systems POST, put on their status topic.",
)
status_topic = broker.publisher(
    "brug.social.status.{organisation_id}.v1",
    title="brug.social.status.{organisation_id}.v1",
    description="A status or signal a case system POSTed. Key: referral id.",
    schema=CloudEvent[ReferralStatusReported | SignalRaised],
)


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers or {}


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    await broker.start()
    log.info(READY_LOG_LINE, port=settings.social_port)
    yield
    await broker.stop()
    await engine.dispose()


app = FastAPI(title="Brug social gateway", version=brug_version(), lifespan=lifespan)
instrument_http(app, SERVICE)


@app.exception_handler(Problem)
async def _problem(_: Request, problem: Problem) -> Response:
    body = {
        "type": "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
    }
    return JSONResponse(body, problem.status, problem.headers, media_type=PROBLEM_JSON)


@app.exception_handler(RequestValidationError)
async def _invalid_body(request: Request, invalid: RequestValidationError) -> Response:
    error = invalid.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return await _problem(
        request, Problem(422, "Unprocessable Content", f"{where}: {error['msg']}")
    )


@app.get(
    "/social/v1/referrals/{referral_id}",
    responses={
        200: {"model": ReferralDetails, "description": "The minimised referral"},
        401: {"description": "No or an invalid bearer token"},
        403: {"description": "Assigned to another organisation"},
        404: {"description": "No such referral"},
        410: {"description": "Withdrawn, consent revoked, or details erased"},
    },
)
async def referral_details(referral_id: str, request: Request) -> Response:
    client = _authenticate(request)
    wanted = _referral_id(referral_id)
    async with engine.begin() as connection:
        outcome = await connection.run_sync(_fetch, wanted, client)
    status, body = outcome
    log.info("details fetch", referral_id=referral_id, client_id=client.client_id, status=status)
    if status != 200:
        raise Problem(status, body["title"], body["detail"])
    return JSONResponse(body, 200, headers={"Cache-Control": "no-store"})


@app.get(
    "/social/v1/referrals/{referral_id}/status",
    responses={
        200: {"model": StatusView, "description": "The status Brug applied"},
        401: {"description": "No or an invalid bearer token"},
        403: {"description": "Assigned to another organisation"},
        404: {"description": "No such referral"},
    },
)
async def applied_status(referral_id: str, request: Request) -> Response:
    client = _authenticate(request)
    wanted = _referral_id(referral_id)
    async with engine.begin() as connection:
        view = await connection.run_sync(_status_view, wanted, client)
    return JSONResponse(view.model_dump(mode="json"), 200, headers={"Cache-Control": "no-store"})


def _status_view(connection: Connection, referral_id: uuid.UUID, client: Client) -> StatusView:
    ledger = Ledger(connection)
    referral = _assigned(ledger.referral(referral_id), referral_id, client)
    ledger.audit(
        actor=f"client:{client.client_id}", action="read-status", referral_id=referral_id, detail={}
    )
    return StatusView(
        referral_id=referral_id,
        status=referral.welfare_status,
        sequence=referral.sequence,
        business_status=referral.business_status,
        posted_sequence=referral.reported_sequence,
        withdrawn_by_gp=referral.gp_withdrew,
    )


_POST_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "model": Published,
        "description": "On the status topic; the feedback service applies it",
    },
    401: {"description": "No or an invalid bearer token"},
    403: {"description": "Assigned to another organisation"},
    404: {"description": "No such referral"},
    409: {"description": "The state machine does not allow it (illegal, out of order, unfitting)"},
    410: {"description": "The GP withdrew the referral"},
    422: {"description": "Not a valid report (e.g. completed without an outcome)"},
}


@app.post("/social/v1/referrals/{referral_id}/status", status_code=202, responses=_POST_RESPONSES)
async def report_status(referral_id: str, report: StatusReport, request: Request) -> Response:
    client = _authenticate(request)
    wanted = _referral_id(referral_id)
    event = _event(
        ReferralStatusReported, report, referral_id=wanted, organisation_id=client.organisation
    )
    async with engine.begin() as connection:  # judged and queued under the referral's lock
        verdict = await connection.run_sync(_prejudge_status, event.data, client)
        await connection.run_sync(_remember_report, event, client, verdict)
    return _answer(event, verdict)


@app.post("/social/v1/referrals/{referral_id}/signals", status_code=202, responses=_POST_RESPONSES)
async def raise_signal(referral_id: str, report: SignalReport, request: Request) -> Response:
    client = _authenticate(request)
    wanted = _referral_id(referral_id)
    event = _event(SignalRaised, report, referral_id=wanted, organisation_id=client.organisation)
    async with engine.begin() as connection:
        verdict = await connection.run_sync(_prejudge_signal, event.data, client)
        await connection.run_sync(_remember_report, event, client, verdict)
    return _answer(event, verdict)


def _event(kind: Any, report: BaseModel, **names: Any) -> Any:
    try:
        data = kind(**report.model_dump(), **names)
    except ValidationError as invalid:
        raise Problem(422, "Unprocessable Content", _first_error(invalid)) from None
    return CloudEvent[kind].wrap(data, service=SERVICE)


def _first_error(invalid: ValidationError) -> str:
    error = invalid.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def _prejudge_status(
    connection: Connection, reported: ReferralStatusReported, client: Client
) -> Verdict:
    referral = _locked(connection, reported.referral_id, client)
    report = Report(reported.status, reported.sequence, reported.business_status)
    return verdict(referral.post_report(client.organisation, report))


def _prejudge_signal(connection: Connection, signal: SignalRaised, client: Client) -> Verdict:
    referral = _locked(connection, signal.referral_id, client)
    return verdict(
        referral.raise_signal(client.organisation, signal.organisation_id, signal.signal_id)
    )


def _remember_report(
    connection: Connection, event: CloudEvent[Any], client: Client, verdict: Verdict
) -> None:
    """Audit the attempt; a report that passes goes to the outbox for the organisation's
    status topic (the feedback service applies it from there, as if sent on Kafka)."""
    ledger = Ledger(connection)
    data = event.data
    if verdict.apply:
        topic = topics.social_status(client.organisation)
        Outbox(connection).add(cloudevent_message(event, topic, referral_id=data.referral_id))
    if isinstance(data, ReferralStatusReported) and verdict.apply:
        ledger.record_reported(data.referral_id, data.status.value, data.sequence)
    ledger.audit(
        actor=f"client:{client.client_id}",
        action="reported-status" if isinstance(data, ReferralStatusReported) else "raised-signal",
        referral_id=data.referral_id,
        detail={
            "event_id": event.id,
            "duplicate": verdict.duplicate,
            "refused": verdict.problem.value if verdict.problem else None,
            # Codes only (a status, a signal kind): the trail stays free of free text.
            "status": data.status.value
            if isinstance(data, ReferralStatusReported)
            else data.kind.value,
        },
    )


def _locked(connection: Connection, referral_id: uuid.UUID, client: Client) -> Referral:
    return _assigned(Ledger(connection).referral_for_update(referral_id), referral_id, client)


def _assigned(row: ReferralRow | None, referral_id: uuid.UUID, client: Client) -> Referral:
    """The referral, if it is the caller's: else 404 or 403 (as RFC 9457 problems)."""
    if row is None:
        raise Problem(404, "Not Found", f"no referral {referral_id}")
    referral = Referral.of(row)
    if not referral.assigned_to(client.organisation):
        raise Problem(403, "Forbidden", "this referral is not assigned to your organisation")
    return referral


_PROBLEM_STATUS = {StatusProblemCode.REFERRAL_ENDED: (410, "Gone")}


def _answer(event: CloudEvent[Any], verdict: Verdict) -> Response:
    if verdict.problem is not None:
        status, title = _PROBLEM_STATUS.get(verdict.problem, (409, "Conflict"))
        raise Problem(status, title, f"{verdict.problem.value}: {verdict.detail}")
    if verdict.duplicate:  # already applied: nothing to publish, and nothing wrong
        return JSONResponse(Published(event_id=event.id, duplicate=True).model_dump(), 202)
    log.info("report queued", referral_id=str(event.data.referral_id), event_type=event.type)
    return JSONResponse(Published(event_id=event.id).model_dump(), 202)


def _referral_id(referral_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(referral_id)
    except ValueError:
        raise Problem(404, "Not Found", f"no referral {referral_id}") from None


def _fetch(connection: Connection, referral_id: uuid.UUID, client: Client) -> tuple[int, Any]:
    """Decide and audit in one transaction: every attempt is in the trail, granted or not."""
    ledger = Ledger(connection)
    row = ledger.referral(referral_id)
    try:
        referral = _assigned(row, referral_id, client)
        details = ledger.details(referral_id)
        if referral.withdrawn or details is None:
            raise Problem(410, "Gone", "the referral was withdrawn or its details were erased")
        status, body = 200, details
    except Problem as refused:
        status, body = refused.status, {"title": refused.title, "detail": refused.detail}
    ledger.audit(
        actor=f"client:{client.client_id}",
        action="read-details" if status == 200 else "read-details-refused",
        referral_id=referral_id if row else None,
        detail={"status": status, "organisation": client.organisation},
    )
    return status, body


def _authenticate(request: Request) -> Client:
    try:
        return authenticate_bearer(
            clients, request.headers.get("authorization"), ClientKind.WELFARE
        )
    except Unauthenticated as refused:
        raise Problem(
            401, "Unauthorized", refused.detail, {"WWW-Authenticate": refused.challenge}
        ) from None
