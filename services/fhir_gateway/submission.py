"""Making an accepted referral durable: ledger row, details, first status, audit row and
the ``ReferralSubmitted`` event in the outbox, in one transaction.

The GP's 201 means exactly that this transaction committed: the referral is kept, and the
relay publishes its event (acks=all) as soon as Kafka takes it. So nothing is undone after
the answer, and no event can exist for a referral the ledger does not hold. While Kafka is
down the GP still gets its 201; the referral reaches the organisation when Kafka is back.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.clients import Client
from adapters.fhir.outcomes import FhirProblem
from adapters.fhir.resources import task_tracking_outcome, transaction_response
from adapters.ledger.repository import Ledger, NewReferral, ReferralRow
from adapters.outbox import Outbox, cloudevent_message
from adapters.runtime.logging import bind_ids
from adapters.runtime.tracing import current_trace_id
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.codes import ReferralStatus, SubmissionChannel
from contracts.details import ReferralDetails
from contracts.events import ReferralSubmitted
from services.fhir_gateway.translation import Intake

SERVICE = "fhir-gateway"


@dataclass(frozen=True)
class Remember:
    """Store the answer for this client's X-Request-ID (with the body's hash)."""

    request_id: str
    request_hash: str


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    location: str | None = None  # for a plain create: the Location header
    task_location: str | None = None  # ``Task/<id>/_history/<v>``; not stored with the answer


@dataclass
class Submissions:
    engine: AsyncEngine
    retention: timedelta
    base_url: str  # the FHIR base the GP system uses: response fullUrls are absolute

    async def submit(
        self,
        intake: Intake,
        client: Client,
        traceparent: str | None,
        *,
        shape: Callable[[Reply], Reply] = lambda reply: reply,
        remember: Remember | None = None,
        channel: SubmissionChannel = SubmissionChannel.UNKNOWN,
    ) -> Reply:
        """Accept the referral once: a second submission of the same ServiceRequest
        identifier (or ``ifNoneExist`` match) answers with the referral that exists.

        ``shape`` turns the transaction-response into what the caller answers; with
        ``remember`` that answer is stored for its X-Request-ID in the same transaction."""
        try:
            return await self._submit_once(intake, client, traceparent, shape, remember, channel)
        except IntegrityError:
            # A concurrent twin committed first; answer as a retry would be answered.
            async with self.engine.begin() as connection:
                existing = await connection.run_sync(_existing, intake)
                if existing is None:
                    raise
                reply = shape(_reply(intake, existing, self.base_url, created=False))
                if remember:
                    await connection.run_sync(_remember, client, remember, reply)
            return reply

    async def _submit_once(
        self,
        intake: Intake,
        client: Client,
        traceparent: str | None,
        shape: Callable[[Reply], Reply],
        remember: Remember | None,
        channel: SubmissionChannel,
    ) -> Reply:
        async with self.engine.begin() as connection:
            existing = await connection.run_sync(_existing, intake)
            if existing is not None:
                await connection.run_sync(_audit, client, "resubmitted", existing.referral_id)
                row = existing
                reply = shape(_reply(intake, existing, self.base_url, created=False))
            else:
                new = self._new_referral(intake, client)
                row = _as_row(new)
                submitted = _submitted_event(row, traceparent, intake, channel)
                await connection.run_sync(_record, new, client, submitted)
                reply = shape(_reply(intake, row, self.base_url, created=True))
            if remember:
                await connection.run_sync(_remember, client, remember, reply)
        bind_ids(referral_id=row.referral_id)  # the rest of the request's log lines name it
        return reply

    def _new_referral(self, intake: Intake, client: Client) -> NewReferral:
        referral_id = uuid.uuid4()
        now = datetime.now(UTC)
        details = ReferralDetails(
            referral_id=referral_id,
            organisation_id=intake.organisation_id,
            person=intake.person,
            question=intake.question,
            themes=intake.themes,
            urgency=intake.urgency,
            referrer=intake.referrer,
            submitted_at=now,
        )
        return NewReferral(
            referral_id=referral_id,
            task_id=uuid.uuid4(),
            client_id=client.client_id,
            requester_agb=intake.requester_agb,
            service_request_system=intake.service_request_system,
            service_request_value=intake.service_request_value,
            municipality_code=intake.municipality_code,
            themes=[theme.value for theme in intake.themes],
            age_band=intake.person.age_band.value,
            urgency=intake.urgency.value,
            submitted_at=now,
            details=details.model_dump(mode="json"),
            retain_until=now + self.retention,
            trace_id=current_trace_id(),
            patient_pseudonym=intake.patient_pseudonym,
        )


def _submitted_event(
    row: ReferralRow, traceparent: str | None, intake: Intake, channel: SubmissionChannel
) -> CloudEvent[ReferralSubmitted]:
    """The row's event, with who referred (a discipline) and how, for the monitor."""
    assert row.created_at is not None and row.municipality_code is not None
    return CloudEvent[ReferralSubmitted].wrap(
        ReferralSubmitted(
            referral_id=row.referral_id,
            municipality_code=row.municipality_code,
            themes=row.themes,  # type: ignore[arg-type]
            age_band=row.age_band,  # type: ignore[arg-type]
            urgency=row.urgency,  # type: ignore[arg-type]
            submitted_at=row.created_at,
            referrer_discipline=intake.referrer_discipline,
            channel=channel,
        ),
        service=SERVICE,
        traceparent=traceparent,
        # Deterministic, so a republished submission is recognisably the same event.
        event_id=str(uuid.uuid5(row.referral_id, ReferralSubmitted.EVENT_TYPE)),
    )


def _remember(connection: Connection, client: Client, remember: Remember, reply: Reply) -> None:
    Ledger(connection).store_response(
        client.client_id,
        remember.request_id,
        remember.request_hash,
        reply.status,
        {"body": reply.body, "location": reply.location},
    )


def _as_row(new: NewReferral) -> ReferralRow:
    """The ledger row just written, without reading it back."""
    return ReferralRow(
        referral_id=new.referral_id,
        organisation_id=None,
        municipality_code=new.municipality_code,
        status=ReferralStatus.REQUESTED,
        task_id=new.task_id,
        client_id=new.client_id,
        requester_agb=new.requester_agb,
        service_request_system=new.service_request_system,
        service_request_value=new.service_request_value,
        version=1,
        created_at=new.submitted_at,
        updated_at=new.submitted_at,
        themes=new.themes,
        age_band=new.age_band,
        urgency=new.urgency,
        submitted_event_published=False,  # the relay stamps it once Kafka has it
    )


def _existing(connection: Connection, intake: Intake) -> ReferralRow | None:
    """The referral this ServiceRequest identifier already names, if any; refused (409)
    when it is another patient's (read in the submission's own transaction)."""
    ledger = Ledger(connection)
    row = ledger.find_by_service_request(
        intake.requester_agb, intake.service_request_system, intake.service_request_value
    )
    if row is not None:
        _refuse_another_patient(ledger.details(row.referral_id), intake)
    return row


def _refuse_another_patient(details: dict[str, Any] | None, intake: Intake) -> None:
    """A ServiceRequest identifier names one referral of one patient: a resubmission for
    another patient is refused, not answered with the first patient's Task.

    The BSN is not kept, so the patient is recognised by the kept name and birth year.
    Once the details are erased (retention) there is nothing to compare, and the
    resubmission gets the existing referral as before."""
    kept = (details or {}).get("person")
    if isinstance(kept, dict) and _who(kept) != _who(intake.person.model_dump(mode="json")):
        raise FhirProblem(
            409,
            "duplicate",
            "this ServiceRequest identifier was already used for a referral of another "
            "patient; give each referral an identifier of its own",
            "ServiceRequest.identifier",
        )


def _who(person: dict[str, Any]) -> tuple[Any, ...]:
    """Who a person is, for telling patients apart: names (case and spacing aside) and
    birth year. Contact details may change between a submission and its retry."""

    def fold(value: Any) -> str:
        return " ".join(str(value or "").casefold().split())

    given = tuple(fold(name) for name in person.get("given_names") or [])
    return (
        given,
        fold(person.get("family_name")),
        fold(person.get("display_name")),
        person.get("birth_year"),
    )


def _record(
    connection: Connection,
    new: NewReferral,
    client: Client,
    submitted: CloudEvent[ReferralSubmitted],
) -> None:
    ledger = Ledger(connection)
    ledger.record_intake(new)
    Outbox(connection).add(
        cloudevent_message(submitted, topics.REFERRALS_SUBMITTED, referral_id=new.referral_id)
    )
    ledger.audit(
        actor=f"client:{client.client_id}",
        action="submitted",
        referral_id=new.referral_id,
        detail={"task_id": str(new.task_id), "municipality": new.municipality_code},
        patient_pseudonym=new.patient_pseudonym,  # known here: no read-back at commit
    )


def _audit(connection: Connection, client: Client, action: str, referral_id: uuid.UUID) -> None:
    Ledger(connection).audit(
        actor=f"client:{client.client_id}", action=action, referral_id=referral_id, detail={}
    )


def _reply(intake: Intake, row: ReferralRow, base_url: str, *, created: bool) -> Reply:
    """Exactly one response entry per request entry, in order, as a transaction-response
    requires; fullUrls are absolute. The Task is not an extra entry: the ServiceRequest's
    entry names it in ``response.outcome``, and ``GET [base]/Task?focus=ServiceRequest/<id>``
    finds it (for a GP system that sent no Task of its own)."""
    status = "201 Created" if created else "200 OK"
    task = f"Task/{row.task_id}/_history/{row.version}"
    entries = []
    for item in intake.entries:
        kind = item.resource["resourceType"]
        if kind == "ServiceRequest":
            entry = _entry(status, f"ServiceRequest/{row.referral_id}", 1, base_url)
            entry["response"]["outcome"] = task_tracking_outcome(
                f"ServiceRequest/{row.referral_id}", task
            )
            entries.append(entry)
        elif kind == "Task":
            entries.append(_entry(status, f"Task/{row.task_id}", row.version, base_url))
        else:
            # Kept only as the minimised referral, not as a readable resource of its own.
            entries.append({"response": {"status": "200 OK"}})
    return Reply(201 if created else 200, transaction_response(entries), task_location=task)


def _entry(status: str, reference: str, version: int, base_url: str) -> dict[str, Any]:
    return {
        "fullUrl": f"{base_url}/{reference}",
        "response": {"status": status, "location": f"{reference}/_history/{version}"},
    }
