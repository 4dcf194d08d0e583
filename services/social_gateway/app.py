"""``GET /social/v1/referrals/{id}``: the minimised referral, for the assigned organisation only.

Errors are RFC 9457 problem documents: the social side speaks plain JSON, not FHIR.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Connection

from adapters.clients import Client, ClientKind, Unauthenticated, authenticate_bearer, load_clients
from adapters.database import make_async_engine
from adapters.ledger.repository import Ledger
from adapters.runtime import configure_logging
from adapters.runtime.service import READY_LOG_LINE, brug_version
from contracts.codes import ReferralStatus
from contracts.details import ReferralDetails
from services.social_gateway.settings import SocialGatewaySettings

SERVICE = "social-gateway"
PROBLEM_JSON = "application/problem+json"
GONE_STATUSES = {ReferralStatus.CANCELLED}

settings = SocialGatewaySettings()
configure_logging(SERVICE, settings.log_level, settings.log_format)
log = structlog.get_logger(f"brug.{SERVICE}")
clients = load_clients(settings.clients_path)
engine = make_async_engine(settings.database_url)


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers or {}


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    log.info(READY_LOG_LINE, port=settings.social_port)
    yield
    await engine.dispose()


app = FastAPI(title="Brug social gateway", version=brug_version(), lifespan=lifespan)


@app.exception_handler(Problem)
async def _problem(_: Request, problem: Problem) -> Response:
    body = {
        "type": "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
    }
    return JSONResponse(body, problem.status, problem.headers, media_type=PROBLEM_JSON)


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
    try:
        wanted = uuid.UUID(referral_id)
    except ValueError:
        raise Problem(404, "Not Found", f"no referral {referral_id}") from None
    async with engine.begin() as connection:
        outcome = await connection.run_sync(_fetch, wanted, client)
    status, body = outcome
    log.info("details fetch", referral_id=referral_id, client_id=client.client_id, status=status)
    if status != 200:
        raise Problem(status, body["title"], body["detail"])
    return JSONResponse(body, 200, headers={"Cache-Control": "no-store"})


def _fetch(connection: Connection, referral_id: uuid.UUID, client: Client) -> tuple[int, Any]:
    """Decide and audit in one transaction: every attempt is in the trail, granted or not."""
    ledger = Ledger(connection)
    row = ledger.referral(referral_id)
    details = ledger.details(referral_id) if row else None
    if row is None:
        status, body = 404, {"title": "Not Found", "detail": f"no referral {referral_id}"}
    elif row.organisation_id != client.organisation:
        status, body = (
            403,
            {"title": "Forbidden", "detail": "this referral is not assigned to your organisation"},
        )
    elif row.status in GONE_STATUSES or details is None:
        status, body = (
            410,
            {"title": "Gone", "detail": "the referral was withdrawn or its details were erased"},
        )
    else:
        status, body = 200, details
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
