"""What a case system reads: ``GET /social/v1/referrals/{id}`` (the minimised referral, for
the assigned organisation only; 410 once withdrawn, ended past the grace period
``BRUG_DETAILS_GRACE_AFTER_END_SECONDS``, or erased: ``domain.access``) and
``GET …/{id}/status`` (what Brug applied). Every attempt is audited, granted or not."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Connection

from adapters.clients import Client
from adapters.ledger.repository import Ledger
from contracts.details import ReferralDetails, StatusView
from domain.access import may_read_details
from services.social_gateway import SERVICE
from services.social_gateway.edge import Edge, assigned, parse_referral_id
from services.social_gateway.problems import Problem

router = APIRouter()
log = structlog.get_logger(f"brug.{SERVICE}")
NO_STORE = {"Cache-Control": "no-store"}


@router.get(
    "/social/v1/referrals/{referral_id}",
    responses={
        200: {"model": ReferralDetails, "description": "The minimised referral"},
        401: {"description": "No or an invalid bearer token"},
        403: {"description": "Assigned to another organisation"},
        404: {"description": "No such referral"},
        410: {"description": "Withdrawn, ended (after the grace period), or details erased"},
    },
)
async def referral_details(referral_id: str, request: Request, edge: Edge) -> Response:
    client = edge.authenticate(request)
    wanted = parse_referral_id(referral_id)
    async with edge.engine.begin() as connection:
        grace = timedelta(seconds=edge.settings.details_grace_after_end_seconds)
        status, body = await connection.run_sync(_fetch, wanted, client, grace)
    log.info("details fetch", referral_id=referral_id, client_id=client.client_id, status=status)
    if status != 200:
        raise Problem(status, body["title"], body["detail"])
    return JSONResponse(body, 200, headers=NO_STORE)


@router.get(
    "/social/v1/referrals/{referral_id}/status",
    responses={
        200: {"model": StatusView, "description": "The status Brug applied"},
        401: {"description": "No or an invalid bearer token"},
        403: {"description": "Assigned to another organisation"},
        404: {"description": "No such referral"},
    },
)
async def applied_status(referral_id: str, request: Request, edge: Edge) -> Response:
    client = edge.authenticate(request)
    wanted = parse_referral_id(referral_id)
    async with edge.engine.begin() as connection:
        view = await connection.run_sync(_status_view, wanted, client)
    if isinstance(view, Problem):  # raised once the refusal's audit row has committed
        raise view
    return JSONResponse(view.model_dump(mode="json"), 200, headers=NO_STORE)


def _fetch(
    connection: Connection, wanted: uuid.UUID, client: Client, grace: timedelta
) -> tuple[int, Any]:
    """Decide and audit in one transaction: every attempt is in the trail, granted or not."""
    ledger = Ledger(connection)
    row = ledger.referral(wanted)
    try:
        referral = assigned(row, wanted, client)
        assert row is not None  # assigned() refused a missing referral
        # Nothing changes an ended referral's row, so its last change is when it ended.
        ended_at = row.updated_at if referral.ended else None
        if not may_read_details(referral.status, ended_at=ended_at, now=_now(), grace=grace):
            why = "was withdrawn" if referral.withdrawn else f"has ended ({referral.status.value})"
            raise Problem(410, "Gone", f"the referral {why}: its details are no longer available")
        details = ledger.details(wanted)
        if details is None:
            raise Problem(410, "Gone", "the referral's details were erased")
        status, body = 200, details
    except Problem as refused:
        status, body = refused.status, {"title": refused.title, "detail": refused.detail}
    ledger.audit(
        actor=f"client:{client.client_id}",
        action="read-details" if status == 200 else "read-details-refused",
        referral_id=wanted if row else None,
        detail={"status": status, "organisation": client.organisation},
    )
    return status, body


def _now() -> datetime:
    return datetime.now(UTC)


def _status_view(connection: Connection, wanted: uuid.UUID, client: Client) -> StatusView | Problem:
    ledger = Ledger(connection)
    row = ledger.referral(wanted)
    try:
        referral = assigned(row, wanted, client)
    except Problem as refused:
        ledger.audit(
            actor=f"client:{client.client_id}",
            action="read-status-refused",
            referral_id=wanted if row else None,
            detail={"status": refused.status, "organisation": client.organisation},
        )
        return refused
    ledger.audit(
        actor=f"client:{client.client_id}", action="read-status", referral_id=wanted, detail={}
    )
    return StatusView(
        referral_id=wanted,
        status=referral.welfare_status,
        sequence=referral.sequence,
        business_status=referral.business_status,
        posted_sequence=referral.reported_sequence,
        withdrawn_by_gp=referral.gp_withdrew,
    )
