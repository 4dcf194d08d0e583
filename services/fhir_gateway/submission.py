"""Making an accepted referral durable: ledger row, details, first status and the
``ReferralSubmitted`` event, all or nothing.

The PostgreSQL transaction stays open while the event is published with acks=all and
commits only after Kafka acknowledged it; a publish failure rolls the ledger back, so a
2xx always means both hold the referral. (If the commit itself fails after the publish,
the router finds no ledger row and dead-letters the event as ``unknown-referral``.)
"""

from __future__ import annotations

import asyncio
import uuid
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
from contracts.cloudevents import CloudEvent
from contracts.details import ReferralDetails
from contracts.events import ReferralSubmitted
from services.fhir_gateway.translation import Intake

SERVICE = "fhir-gateway"


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

    async def submit(self, intake: Intake, client: Client, traceparent: str | None) -> Reply:
        """Accept the referral once: a second submission of the same ServiceRequest
        identifier (or ``ifNoneExist`` match) answers with the referral that exists."""
        try:
            return await self._submit_once(intake, client, traceparent)
        except IntegrityError:
            # A concurrent twin committed first; answer as a retry would be answered.
            async with self.engine.connect() as connection:
                existing = await connection.run_sync(_existing, intake)
            if existing is None:
                raise
            return _reply(intake, existing, created=False)

    async def _submit_once(self, intake: Intake, client: Client, traceparent: str | None) -> Reply:
        async with self.engine.begin() as connection:
            existing = await connection.run_sync(_existing, intake)
            if existing is not None:
                await connection.run_sync(_audit, client, "resubmitted", existing.referral_id)
                return _reply(intake, existing, created=False)
            new = self._new_referral(intake, client)
            await connection.run_sync(_record, new, client)
            await asyncio.wait_for(self._publish(new, traceparent), self.publish_timeout)
            row = await connection.run_sync(lambda c: Ledger(c).referral(new.referral_id))
            assert row is not None
            return _reply(intake, row, created=True)

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
        )

    async def _publish(self, new: NewReferral, traceparent: str | None) -> None:
        event = CloudEvent[ReferralSubmitted].wrap(
            ReferralSubmitted(
                referral_id=new.referral_id,
                municipality_code=new.municipality_code,
                themes=new.themes,  # type: ignore[arg-type]
                age_band=new.age_band,  # type: ignore[arg-type]
                urgency=new.urgency,  # type: ignore[arg-type]
                submitted_at=new.submitted_at,
            ),
            service=SERVICE,
            traceparent=traceparent,
        )
        await self.publisher.publish(
            event.to_json_bytes(),
            key=str(new.referral_id).encode(),
            headers={"content-type": "application/cloudevents+json"},
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
