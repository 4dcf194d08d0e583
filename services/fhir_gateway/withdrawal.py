"""The GP withdraws a referral: ``PUT``/``PATCH [base]/Task/{id}`` to ``cancelled``.

One transaction under the referral's row lock: Task ``cancelled`` (new version), audit, and
``ReferralWithdrawn`` in the outbox for the organisation's referral topic (same key as the
referral event, so after it). The details endpoint then answers 410. Withdrawing again
changes nothing, so a GP that got a 503 simply retries.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.clients import Client
from adapters.fhir.outcomes import FhirProblem
from adapters.ledger.repository import Ledger, ReferralRow
from adapters.outbox import Outbox, OutboxMessage, cloudevent_message
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
            return await connection.run_sync(_cancel, task_id, client)


def _cancel(connection: Connection, task_id: uuid.UUID, client: Client) -> ReferralRow:
    """Cancel under the referral's row lock, so a status report applied at the same moment
    either lands before (and is then ended by this) or is refused after it."""
    ledger = Ledger(connection)
    found = ledger.referral_by_task(task_id)
    if found is None or found.requester_agb != client.organisation:
        raise FhirProblem(404, "not-found", f"Task/{task_id} is not known", "Task.id")
    row = ledger.referral_for_update(found.referral_id)
    assert row is not None
    withdrawal = Referral.of(row).withdraw()
    if isinstance(withdrawal, Refusal):
        raise FhirProblem(422, "business-rule", withdrawal.detail, "Task.status")
    if not withdrawal:  # a repeat: the organisation was told the first time
        return row
    now = datetime.now(UTC)
    ledger.change_status(
        row.referral_id,
        ReferralStatus.CANCELLED,
        source=f"gp:{client.client_id}",
        at=now,
        reason="Withdrawn by the referring GP",
    )
    ledger.audit(
        actor=f"client:{client.client_id}",
        action="withdrawn",
        referral_id=row.referral_id,
        detail={},
    )
    if row.organisation_id is not None:
        Outbox(connection).add(_withdrawn_message(row.referral_id, row.organisation_id, now))
    updated = ledger.referral(row.referral_id)
    assert updated is not None
    return updated


def _withdrawn_message(referral_id: uuid.UUID, organisation_id: str, at: datetime) -> OutboxMessage:
    event = CloudEvent[ReferralWithdrawn].wrap(
        ReferralWithdrawn(
            referral_id=referral_id, organisation_id=organisation_id, withdrawn_at=at
        ),
        service=SERVICE,
        event_id=str(uuid.uuid5(referral_id, ReferralWithdrawn.EVENT_TYPE)),
    )
    return cloudevent_message(
        event, topics.social_referrals(organisation_id), referral_id=referral_id
    )
