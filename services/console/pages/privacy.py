"""The privacy officer's patient access report (AVG art. 15): for a BSN, who accessed this
patient's data, when, why and with what result. Privacy officers only; the BSN travels in a
POST body (never a URL, so never an access log), is turned into its pseudonym at once and
is not kept; the lookup itself is audited (``reported-accesses``) with the reason given."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection

from adapters.ledger.audit_trail import Access, accesses_of
from adapters.ledger.repository import Ledger
from adapters.pseudonyms import bsn_pseudonym
from services.console import SERVICE
from services.console.auth import Forbidden, SignedIn
from services.console.web import ConsoleDep

router = APIRouter()
log = structlog.get_logger(f"brug.{SERVICE}")


@router.get("/privacy/accesses", response_class=HTMLResponse)
async def access_report_form(request: Request, console: ConsoleDep) -> Response:
    me = await console.sessions.current(request)
    _officer_only(me)
    return console.page(request, "privacy.html", me, active="privacy", accesses=None, error="")


@router.post("/privacy/accesses", response_class=HTMLResponse)
async def access_report(
    request: Request,
    console: ConsoleDep,
    bsn: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    me = await console.revealer(request, csrf, reason)  # a privacy officer, with a reason
    bsn = bsn.strip().replace(" ", "").replace(".", "")
    if len(bsn) != 9 or not bsn.isdigit():
        return console.page(
            request,
            "privacy.html",
            me,
            status=400,
            active="privacy",
            accesses=None,
            error="A BSN is nine digits.",
        )
    pseudonym = bsn_pseudonym(bsn, console.settings.pseudonym_key.get_secret_value())

    def report(connection: Connection) -> list[Access]:
        found = accesses_of(connection, pseudonym)
        Ledger(connection).audit(
            actor=me.actor,
            action="reported-accesses",
            referral_id=None,
            detail={"accesses": len(found), "reason": reason.strip()[:500]},
            patient_pseudonym=pseudonym,
        )
        return found

    async with console.engine.begin() as connection:
        accesses = await connection.run_sync(report)
    log.info("access report", operator=me.username, accesses=len(accesses))
    return console.page(
        request,
        "privacy.html",
        me,
        active="privacy",
        accesses=accesses,
        pseudonym=pseudonym[:12],
        error="",
    )


def _officer_only(me: SignedIn) -> None:
    if not me.may_reveal:
        raise Forbidden("Only a privacy officer may look up a patient's accesses.")
