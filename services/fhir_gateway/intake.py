"""One submission, whether it came over HTTP or Kafka: the X-Request-ID replay, the
translation at the privacy boundary, the requester check, and the durable intake.

Both entrypoints (``routes/submit.py`` and ``inbound.py``) call ``process_submission``,
so a GP system gets the same checks and the same answer on either channel.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from adapters.clients import Client
from adapters.fhir.outcomes import FhirProblem
from adapters.ledger.repository import Ledger, StoredResponse
from adapters.pseudonyms import bsn_pseudonym
from contracts.codes import SubmissionChannel
from services.fhir_gateway.edge import FhirEdge
from services.fhir_gateway.located import Located
from services.fhir_gateway.submission import SERVICE, Remember, Reply
from services.fhir_gateway.translation import Intake, read_referral
from services.fhir_gateway.web import infrastructure_guard, parse_json

Parse = Callable[[Any], list[Located]]

MAX_REQUEST_ID = 128  # idempotency_keys.request_id
REQUEST_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_REQUEST_ID}}}")
MAX_IDENTIFIER = 255  # referrals.service_request_system / _value
FULL_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

log = structlog.get_logger(f"brug.{SERVICE}")


async def process_submission(
    edge: FhirEdge,
    client: Client,
    body: bytes,
    parse: Parse,
    *,
    request_id: str | None,
    traceparent: str | None,
    channel: SubmissionChannel,
    as_transaction: bool = True,
) -> Reply:
    """Accept the referral in ``body`` for ``client`` (or raise a ``FhirProblem``);
    ``channel`` says how it came (for the monitor)."""
    request_hash = hashlib.sha256(body).hexdigest()
    _check_request_id(request_id)
    if request_id and (stored := await _stored_reply(edge, client, request_id)):
        return _replay(stored, request_hash)
    located = _parsed(parse, parse_json(body))
    _check_consent_dates(located)
    intake = read_referral(
        located,
        today=datetime.now(UTC).date(),
        postcodes=edge.postcodes,
        directory=edge.directory,
        themes=edge.themes,
        pseudonymise=lambda bsn: bsn_pseudonym(bsn, edge.settings.pseudonym_key.get_secret_value()),
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
    _check_identifier(intake)
    async with infrastructure_guard():
        reply = await edge.submissions.submit(
            intake,
            client,
            traceparent,
            shape=(lambda reply: reply) if as_transaction else _as_create,
            remember=Remember(request_id, request_hash) if request_id else None,
            channel=channel,
        )
    log.info(
        "referral submitted" if reply.status == 201 else "referral resubmitted",
        client_id=client.client_id,
        status=reply.status,
    )
    return reply


def _parsed(parse: Parse, document: Any) -> list[Located]:
    """The structural checks, where fhir.resources itself may fail on what it does not
    expect (a resourceType that is a number, say: a TypeError) rather than report it."""
    try:
        located = parse(document)
    except (TypeError, KeyError, AttributeError, ValueError, RecursionError) as error:
        raise FhirProblem(
            400, "structure", f"not valid FHIR R4: the validator failed ({type(error).__name__})"
        ) from None
    for item in located:  # an empty object passes the Bundle's model as a resource
        if not isinstance(item.resource.get("resourceType"), str):
            raise FhirProblem(400, "structure", "every resource needs a resourceType", item.path)
    return located


def _check_request_id(request_id: str | None) -> None:
    """An X-Request-ID (or Kafka key) is refused, not replaced: a replaced one would
    silently lose the idempotency the client asked for."""
    if request_id is not None and not REQUEST_ID.fullmatch(request_id):
        raise FhirProblem(
            400,
            "value",
            f"X-Request-ID must be 1 to {MAX_REQUEST_ID} printable ASCII characters "
            "(a UUID is best)",
            "X-Request-ID",
        )


def _check_identifier(intake: Intake) -> None:
    """The ledger keeps a ServiceRequest identifier's system and value up to 255 characters."""
    for part, value in (
        ("system", intake.service_request_system),
        ("value", intake.service_request_value),
    ):
        if len(value) > MAX_IDENTIFIER:
            where = next(
                e.path for e in intake.entries if e.resource.get("resourceType") == "ServiceRequest"
            )
            raise FhirProblem(
                422,
                "too-long",
                f"the ServiceRequest identifier's {part} is {len(value)} characters long; "
                f"Brug keeps at most {MAX_IDENTIFIER}",
                f"{where}.identifier.{part}",
            )


def _check_consent_dates(located: list[Located]) -> None:
    """A Consent's period end must be a full date: the consent check compares days.

    FHIR allows a year (``2030``) or a month (``2030-06``) too; until the translation
    reads those as the end of that year or month, they are refused rather than guessed."""
    for item in located:
        if item.resource.get("resourceType") != "Consent":
            continue
        provision = item.resource.get("provision")
        period = provision.get("period") if isinstance(provision, dict) else None
        end = period.get("end") if isinstance(period, dict) else None
        if isinstance(end, str) and not FULL_DATE.match(end):
            raise FhirProblem(
                422,
                "not-supported",
                "Consent.provision.period.end must be a full date (YYYY-MM-DD); "
                "a year or a month alone is not supported",
                f"{item.path}.provision.period.end",
            )


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
    service_request = reply.body["entry"][0]["response"]["location"]
    return Reply(reply.status, reply.body["entry"][0]["response"]["outcome"], service_request)
