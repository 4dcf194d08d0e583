"""What a case system without Kafka POSTs: ``/social/v1/referrals/{id}/status`` and
``…/{id}/signals``, exactly what it would otherwise put on its status topic.

The report is judged by the aggregate under the referral's row lock, so the sender hears
at once what the feedback service would refuse (403, 404, 409, 410); what passes goes to
the outbox for ``brug.social.status.<org>.v1`` in the same transaction and is answered
202, and the feedback service applies it from there.
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection

from adapters.clients import Client
from adapters.ledger.repository import Ledger
from adapters.outbox import Outbox, cloudevent_message
from adapters.runtime.safejson import bad_string
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.details import Published
from contracts.events.status import (
    ReferralStatusReported,
    SignalRaised,
    SignalReport,
    StatusProblemCode,
    StatusReport,
)
from domain.referral import Referral, Report, verdict
from domain.status_machine import Verdict
from services.social_gateway import SERVICE
from services.social_gateway.edge import Edge, assigned, parse_referral_id
from services.social_gateway.problems import Problem, first_error

router = APIRouter()
log = structlog.get_logger(f"brug.{SERVICE}")

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
MAX_SEQUENCE = 2**31 - 1  # referrals.reported_sequence and status_sequence are INTEGER
_PROBLEM_STATUS = {StatusProblemCode.REFERRAL_ENDED: (410, "Gone")}


@router.post(
    "/social/v1/referrals/{referral_id}/status", status_code=202, responses=_POST_RESPONSES
)
async def report_status(
    referral_id: str, report: StatusReport, request: Request, edge: Edge
) -> Response:
    client = edge.authenticate(request)
    wanted = parse_referral_id(referral_id)
    if report.sequence > MAX_SEQUENCE:  # the ledger's column; the contract sets no maximum
        raise Problem(422, "Unprocessable Content", f"sequence: at most {MAX_SEQUENCE}")
    event = _event(
        ReferralStatusReported, report, referral_id=wanted, organisation_id=client.organisation
    )
    async with edge.engine.begin() as connection:  # judged and queued under the referral's lock
        judged = await connection.run_sync(_prejudge_status, event.data, client)
        await connection.run_sync(_remember_report, event, client, judged)
    return _answer(event, judged)


@router.post(
    "/social/v1/referrals/{referral_id}/signals", status_code=202, responses=_POST_RESPONSES
)
async def raise_signal(
    referral_id: str, report: SignalReport, request: Request, edge: Edge
) -> Response:
    client = edge.authenticate(request)
    wanted = parse_referral_id(referral_id)
    event = _event(SignalRaised, report, referral_id=wanted, organisation_id=client.organisation)
    async with edge.engine.begin() as connection:
        judged = await connection.run_sync(_prejudge_signal, event.data, client)
        await connection.run_sync(_remember_report, event, client, judged)
    return _answer(event, judged)


def _event(kind: Any, report: BaseModel, **names: Any) -> Any:
    if (where := bad_string(report.model_dump(), "body")) is not None:
        # PostgreSQL cannot keep a NUL, UTF-8 cannot carry a lone surrogate: refused here,
        # rather than failing in the feedback service that applies the report.
        raise Problem(
            422,
            "Unprocessable Content",
            f"{where}: holds NUL, another control character or a lone surrogate",
        )
    try:
        data = kind(**report.model_dump(), **names)
    except ValidationError as invalid:
        raise Problem(422, "Unprocessable Content", first_error(invalid)) from None
    return CloudEvent[kind].wrap(data, service=SERVICE)


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


def _locked(connection: Connection, referral_id: uuid.UUID, client: Client) -> Referral:
    return assigned(Ledger(connection).referral_for_update(referral_id), referral_id, client)


def _remember_report(
    connection: Connection, event: CloudEvent[Any], client: Client, judged: Verdict
) -> None:
    """Audit the attempt; a report that passes goes to the outbox for the organisation's
    status topic (the feedback service applies it from there, as if sent on Kafka)."""
    ledger = Ledger(connection)
    data = event.data
    if judged.apply:
        topic = topics.social_status(client.organisation)
        Outbox(connection).add(cloudevent_message(event, topic, referral_id=data.referral_id))
    if isinstance(data, ReferralStatusReported) and judged.apply:
        ledger.record_reported(data.referral_id, data.status.value, data.sequence)
    ledger.audit(
        actor=f"client:{client.client_id}",
        action="reported-status" if isinstance(data, ReferralStatusReported) else "raised-signal",
        referral_id=data.referral_id,
        detail={
            "event_id": event.id,
            "duplicate": judged.duplicate,
            "refused": judged.problem.value if judged.problem else None,
            # Codes only (a status, a signal kind): the trail stays free of free text.
            "status": data.status.value
            if isinstance(data, ReferralStatusReported)
            else data.kind.value,
        },
    )


def _answer(event: CloudEvent[Any], judged: Verdict) -> Response:
    if judged.problem is not None:
        status, title = _PROBLEM_STATUS.get(judged.problem, (409, "Conflict"))
        raise Problem(status, title, f"{judged.problem.value}: {judged.detail}")
    if judged.duplicate:  # already applied: nothing to publish, and nothing wrong
        return JSONResponse(Published(event_id=event.id, duplicate=True).model_dump(), 202)
    log.info("report queued", referral_id=str(event.data.referral_id), event_type=event.type)
    return JSONResponse(Published(event_id=event.id).model_dump(), 202)
