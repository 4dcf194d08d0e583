"""One referral: find it by id or identifier, its timeline (metadata only, the viewing
audited), and a privacy officer's reveal of its details with a reason (audited too)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Connection

from adapters.ledger.operations import Operations
from adapters.ledger.repository import Ledger
from adapters.ledger.timeline import Timeline, referral_timeline
from services.console import SERVICE
from services.console.auth import Forbidden, SignedIn
from services.console.web import Console, ConsoleDep, audit, done

router = APIRouter()
log = structlog.get_logger(f"brug.{SERVICE}")


@router.get("/referrals", response_class=HTMLResponse)
async def find_referral(request: Request, console: ConsoleDep, q: str = "") -> Response:
    me = await console.sessions.current(request)
    if not q.strip():
        return console.page(request, "find.html", me, q=q, missing=False)
    async with console.engine.connect() as connection:
        found = await connection.run_sync(lambda c: Operations(c).find_referral(q))
    if found is None:
        return console.page(request, "find.html", me, q=q, missing=True, status=404)
    return RedirectResponse(f"/referrals/{found}", status_code=303)


@router.get("/referrals/{referral_id}", response_class=HTMLResponse)
async def referral_page(request: Request, console: ConsoleDep, referral_id: uuid.UUID) -> Response:
    me = await console.sessions.current(request)
    timeline = await _audited_timeline(console, me, referral_id)
    return console.page(
        request, "referral.html", me, timeline=timeline, details=None, done=done(request)
    )


@router.post("/referrals/{referral_id}/reveal", response_class=HTMLResponse)
async def reveal_details(
    request: Request,
    console: ConsoleDep,
    referral_id: uuid.UUID,
    reason: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    me = await console.revealer(request, csrf, reason)

    def read(connection: Connection) -> tuple[Timeline | None, dict[str, Any] | None]:
        audit(connection, me, "revealed-details", referral_id, {"reason": reason.strip()[:500]})
        return referral_timeline(connection, referral_id), Ledger(connection).details(referral_id)

    async with console.engine.begin() as connection:
        timeline, details = await connection.run_sync(read)
    if timeline is None:
        return console.page(request, "find.html", me, q=str(referral_id), missing=True, status=404)
    log.info("details revealed", referral_id=str(referral_id), operator=me.username)
    return console.page(
        request, "referral.html", me, timeline=timeline, details=details or {}, done=""
    )


async def _audited_timeline(console: Console, me: SignedIn, referral_id: uuid.UUID) -> Timeline:
    """The timeline, and in the same transaction the audit record that ``me`` viewed it."""

    def read(connection: Connection) -> Timeline | None:
        timeline = referral_timeline(connection, referral_id)
        if timeline is not None:
            audit(connection, me, "viewed-timeline", referral_id, {})
        return timeline

    async with console.engine.begin() as connection:
        timeline = await connection.run_sync(read)
    if timeline is None:
        raise Forbidden(f"No referral {referral_id} in the ledger.")
    return timeline
