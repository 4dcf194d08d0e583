"""One submission, whether it came over HTTP or Kafka: the X-Request-ID replay, the
translation at the privacy boundary, the requester check, and the durable intake.

Both entrypoints (``routes/submit.py`` and ``inbound.py``) call ``process_submission``,
so a GP system gets the same checks and the same answer on either channel.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from adapters.clients import Client
from adapters.fhir.outcomes import FhirProblem, operation_outcome
from adapters.ledger.repository import Ledger, StoredResponse
from services.fhir_gateway.edge import FhirEdge
from services.fhir_gateway.located import Located
from services.fhir_gateway.submission import SERVICE, Remember, Reply
from services.fhir_gateway.translation import read_referral
from services.fhir_gateway.web import infrastructure_guard, parse_json

Parse = Callable[[Any], list[Located]]

log = structlog.get_logger(f"brug.{SERVICE}")


async def process_submission(
    edge: FhirEdge,
    client: Client,
    body: bytes,
    parse: Parse,
    *,
    request_id: str | None,
    traceparent: str | None,
    as_transaction: bool = True,
) -> Reply:
    """Accept the referral in ``body`` for ``client`` (or raise a ``FhirProblem``)."""
    request_hash = hashlib.sha256(body).hexdigest()
    if request_id and (stored := await _stored_reply(edge, client, request_id)):
        return _replay(stored, request_hash)
    intake = read_referral(
        parse(parse_json(body)),
        today=datetime.now(UTC).date(),
        postcodes=edge.postcodes,
        directory=edge.directory,
        themes=edge.themes,
    )
    if intake.requester_agb != client.organisation:
        raise FhirProblem(
            403,
            "forbidden",
            "this client submits referrals for its own organisation only "
            f"(AGB {client.organisation}), not for AGB {intake.requester_agb}",
            "ServiceRequest.requester",
        )
    _check_if_none_exist(intake.if_none_exist, intake.service_request_system)
    async with infrastructure_guard():
        reply = await edge.submissions.submit(
            intake,
            client,
            traceparent,
            shape=(lambda reply: reply) if as_transaction else _as_create,
            remember=Remember(request_id, request_hash) if request_id else None,
        )
    log.info(
        "referral submitted" if reply.status == 201 else "referral resubmitted",
        client_id=client.client_id,
        status=reply.status,
    )
    return reply


def _check_if_none_exist(criteria: str | None, identifier_system: str) -> None:
    """Conditional create is answered by the identifier check in ``Submissions.submit``;
    only ``identifier=system|value`` matching the ServiceRequest's own is supported."""
    if not criteria:
        return
    name, _, value = criteria.partition("=")
    if name != "identifier" or not value.startswith(f"{identifier_system}|"):
        raise FhirProblem(
            400,
            "not-supported",
            "ifNoneExist supports only identifier=<system>|<value> of the ServiceRequest",
            "Bundle.entry.request.ifNoneExist",
        )


async def _stored_reply(edge: FhirEdge, client: Client, request_id: str) -> StoredResponse | None:
    async with infrastructure_guard(), edge.engine.connect() as connection:
        return await connection.run_sync(
            lambda c: Ledger(c).stored_response(client.client_id, request_id)
        )


def _replay(stored: StoredResponse, request_hash: str) -> Reply:
    if stored.request_hash != request_hash:
        raise FhirProblem(
            409,
            "duplicate",
            "this X-Request-ID was already used for a different request body",
        )
    return Reply(stored.status, stored.body["body"], stored.body.get("location"))


def _as_create(reply: Reply) -> Reply:
    """``POST [base]/ServiceRequest`` answers as a create: an OperationOutcome naming the Task."""
    task = next(
        e for e in reply.body["entry"] if e.get("resource", {}).get("resourceType") == "Task"
    )
    service_request = reply.body["entry"][0]["response"]["location"]
    outcome = operation_outcome(
        "information",
        "informational",
        f"referral accepted as {service_request}; tracked by {task['response']['location']}",
    )
    outcome["issue"][0]["details"] = {"text": task["response"]["location"]}
    return Reply(reply.status, outcome, location=service_request)
