"""The GP withdraws a referral: ``PUT``/``PATCH [base]/Task/{id}`` to ``cancelled``.

The ledger changes first (Task ``cancelled``, new version, audit), then the organisation
gets ``ReferralWithdrawn`` on its referral topic (after the referral event, same key, so in
order) and the details endpoint answers 410. Withdrawing again republishes the same event
(deterministic id), so a GP that got a 503 simply retries.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from faststream.kafka.publisher.usecase import DefaultPublisher
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.clients import Client
from adapters.fhir.outcomes import FhirProblem
from adapters.ledger.repository import Ledger, ReferralRow
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.codes import ReferralStatus
from contracts.events import ReferralWithdrawn
from domain.referral import Referral, Refusal

SERVICE = "fhir-gateway"


def requested_status(method: str, body: Any, resource_type: str = "Task") -> str | None:
    """The status a PUT (the resource) or PATCH (JSON Patch on /status) asks for."""
    if method == "PUT" and isinstance(body, dict) and body.get("resourceType") == resource_type:
        return body.get("status")
    if method == "PATCH" and isinstance(body, list):
        statuses = [
            op.get("value")
            for op in body
            if isinstance(op, dict) and op.get("op") == "replace" and op.get("path") == "/status"
        ]
        if len(statuses) == len(body) == 1:
            return statuses[0]
    return None


@dataclass
class Withdrawals:
    engine: AsyncEngine
    publisher: DefaultPublisher
    publish_timeout: float

    async def withdraw_service_request(self, referral_id: uuid.UUID, client: Client) -> ReferralRow:
        """Revoking the ServiceRequest withdraws the referral just like cancelling its Task."""
        async with self.engine.connect() as connection:
            row = await connection.run_sync(lambda c: Ledger(c).referral(referral_id))
        if row is None or row.task_id is None or row.requester_agb != client.organisation:
            raise FhirProblem(
                404, "not-found", f"ServiceRequest/{referral_id} is not known", "ServiceRequest.id"
            )
        return await self.withdraw(row.task_id, client)

    async def withdraw(self, task_id: uuid.UUID, client: Client) -> ReferralRow:
        async with self.engine.begin() as connection:
            row = await connection.run_sync(_cancel, task_id, client)
        if row.organisation_id is not None:
            await asyncio.wait_for(self._publish(row), self.publish_timeout)
        return row

    async def _publish(self, row: ReferralRow) -> None:
        assert row.organisation_id is not None and row.updated_at is not None
        event = CloudEvent[ReferralWithdrawn].wrap(
            ReferralWithdrawn(
                referral_id=row.referral_id,
                organisation_id=row.organisation_id,
                withdrawn_at=row.updated_at,
            ),
            service=SERVICE,
            event_id=str(uuid.uuid5(row.referral_id, ReferralWithdrawn.EVENT_TYPE)),
        )
        await self.publisher.publish(
            event.to_json_bytes(),
            topic=topics.social_referrals(row.organisation_id),
            key=str(row.referral_id).encode(),
            headers={"content-type": "application/cloudevents+json"},
        )


def _cancel(connection: Connection, task_id: uuid.UUID, client: Client) -> ReferralRow:
    ledger = Ledger(connection)
    row = ledger.referral_by_task(task_id)
    if row is None or row.requester_agb != client.organisation:
        raise FhirProblem(404, "not-found", f"Task/{task_id} is not known", "Task.id")
    withdrawal = Referral.of(row).withdraw()
    if isinstance(withdrawal, Refusal):
        raise FhirProblem(422, "business-rule", withdrawal.detail, "Task.status")
    if withdrawal:  # not a repeat: the Task is cancelled now
        ledger.change_status(
            row.referral_id,
            ReferralStatus.CANCELLED,
            source=f"gp:{client.client_id}",
            at=datetime.now(UTC),
            reason="Withdrawn by the referring GP",
        )
        ledger.audit(
            actor=f"client:{client.client_id}",
            action="withdrawn",
            referral_id=row.referral_id,
            detail={},
        )
    updated = ledger.referral(row.referral_id)
    assert updated is not None
    return updated
