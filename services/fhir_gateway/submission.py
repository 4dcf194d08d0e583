"""Making an accepted referral durable: ledger row, details, first status and the
``ReferralSubmitted`` event, all or nothing.

The ledger transaction commits first, then ``ReferralSubmitted`` is published with
acks=all, then the publish is recorded; the GP gets its 2xx only after all three. If Kafka
does not acknowledge, the new intake is deleted again and the GP gets a 503 (nothing
half-accepted). Should even that delete fail, the referral stays unpublished and the GP's
retry — same identifier — publishes it and answers with it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from faststream.kafka.publisher.usecase import DefaultPublisher
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.clients import Client
from adapters.fhir.resources import task_resource, transaction_response
from adapters.ledger.repository import Ledger, NewReferral, ReferralRow
from adapters.runtime.logging import bind_ids
from adapters.runtime.tracing import current_trace_id
from contracts.cloudevents import CloudEvent
from contracts.codes import ReferralStatus
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


@dataclass
class Submissions:
    engine: AsyncEngine
    publisher: DefaultPublisher
    retention: timedelta
    publish_timeout: float

    async def submit(
        self,
        intake: Intake,
        client: Client,
        traceparent: str | None,
        *,
        shape: Callable[[Reply], Reply] = lambda reply: reply,
        remember: Remember | None = None,
    ) -> Reply:
        """Accept the referral once: a second submission of the same ServiceRequest
        identifier (or ``ifNoneExist`` match) answers with the referral that exists.

        ``shape`` turns the transaction-response into what the caller answers; with
        ``remember`` that answer is stored for its X-Request-ID in the same transaction."""
        try:
            return await self._submit_once(intake, client, traceparent, shape, remember)
        except IntegrityError:
            # A concurrent twin committed first; answer as a retry would be answered.
            async with self.engine.begin() as connection:
                existing = await connection.run_sync(_existing, intake)
                if existing is None:
                    raise
                reply = shape(_reply(intake, existing, created=False))
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
    ) -> Reply:
        async with self.engine.begin() as connection:
            existing = await connection.run_sync(_existing, intake)
            if existing is not None:
                await connection.run_sync(_audit, client, "resubmitted", existing.referral_id)
                row = existing
                reply = shape(_reply(intake, existing, created=False))
            else:
                new = self._new_referral(intake, client)
                await connection.run_sync(_record, new, client)
                row = _as_row(new)
                reply = shape(_reply(intake, row, created=True))
            if remember:
                await connection.run_sync(_remember, client, remember, reply)
        bind_ids(referral_id=row.referral_id)  # the rest of the request's log lines name it
        if not row.submitted_event_published:
            await self._publish_or_discard(row, client, remember, traceparent, new=existing is None)
        return reply

    async def _publish_or_discard(
        self,
        row: ReferralRow,
        client: Client,
        remember: Remember | None,
        traceparent: str | None,
        *,
        new: bool,
    ) -> None:
        """The ledger row is committed before the event exists, so the router always finds
        it. If Kafka does not acknowledge, a new intake is undone (the GP gets a 503 and
        retries); an older unpublished one stays for its retry to publish."""
        try:
            await asyncio.wait_for(self._publish(row, traceparent), self.publish_timeout)
        except BaseException:
            if new:
                async with self.engine.begin() as connection:
                    await connection.run_sync(
                        lambda c: Ledger(c).discard_unpublished(
                            row.referral_id,
                            client.client_id,
                            remember.request_id if remember else None,
                        )
                    )
            raise
        async with self.engine.begin() as connection:
            await connection.run_sync(
                lambda c: Ledger(c).mark_submitted_event_published(
                    row.referral_id, datetime.now(UTC)
                )
            )

    def _new_referral(self, intake: Intake, client: Client) -> NewReferral:
        referral_id = uuid.uuid4()
        now = datetime.now(UTC)
        details = ReferralDetails(
            referral_id=referral_id,
            organisation_id=intake.organisation_id,
            person=intake.person,
            question=intake.question,
            themes=intake.themes,
            unmapped_reasons=intake.unmapped_reasons,
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
        )

    async def _publish(self, row: ReferralRow, traceparent: str | None) -> None:
        assert row.created_at is not None and row.municipality_code is not None
        event = CloudEvent[ReferralSubmitted].wrap(
            ReferralSubmitted(
                referral_id=row.referral_id,
                municipality_code=row.municipality_code,
                themes=row.themes,  # type: ignore[arg-type]
                age_band=row.age_band,  # type: ignore[arg-type]
                urgency=row.urgency,  # type: ignore[arg-type]
                submitted_at=row.created_at,
            ),
            service=SERVICE,
            traceparent=traceparent,
            # Deterministic, so a republished submission is recognisably the same event.
            event_id=str(uuid.uuid5(row.referral_id, ReferralSubmitted.EVENT_TYPE)),
        )
        await self.publisher.publish(
            event.to_json_bytes(),
            key=str(row.referral_id).encode(),
            headers={"content-type": "application/cloudevents+json"},
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
        submitted_event_published=False,
    )


def _existing(connection: Connection, intake: Intake) -> ReferralRow | None:
    return Ledger(connection).find_by_service_request(
        intake.requester_agb, intake.service_request_system, intake.service_request_value
    )


def _record(connection: Connection, new: NewReferral, client: Client) -> None:
    ledger = Ledger(connection)
    ledger.record_intake(new)
    ledger.audit(
        actor=f"client:{client.client_id}",
        action="submitted",
        referral_id=new.referral_id,
        detail={"task_id": str(new.task_id), "municipality": new.municipality_code},
    )


def _audit(connection: Connection, client: Client, action: str, referral_id: uuid.UUID) -> None:
    Ledger(connection).audit(
        actor=f"client:{client.client_id}", action=action, referral_id=referral_id, detail={}
    )


def _reply(intake: Intake, row: ReferralRow, *, created: bool) -> Reply:
    """One response entry per request entry, in order, as a transaction-response requires."""
    status = "201 Created" if created else "200 OK"
    entries = []
    for item in intake.entries:
        kind = item.resource["resourceType"]
        if kind == "ServiceRequest":
            entries.append(_entry(status, f"ServiceRequest/{row.referral_id}/_history/1"))
        elif kind == "Task":
            entries.append(_entry(status, f"Task/{row.task_id}/_history/{row.version}"))
        else:
            # Kept only as the minimised referral, not as a readable resource of its own.
            entries.append({"response": {"status": "200 OK"}})
    if not any(item.resource["resourceType"] == "Task" for item in intake.entries):
        entries.append(
            {
                "fullUrl": f"Task/{row.task_id}",
                "resource": task_resource(row),
                "response": {
                    "status": status,
                    "location": f"Task/{row.task_id}/_history/{row.version}",
                },
            }
        )
    return Reply(201 if created else 200, transaction_response(entries))


def _entry(status: str, location: str) -> dict[str, Any]:
    return {"response": {"status": status, "location": location}}
