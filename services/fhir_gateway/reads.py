"""What a GP system reads: its Tasks and the Communications from the welfare side, by id
or by search. Every read is audited per referral, and the first read of feedback is a
receipt: the organisation learns on its referral topic that the GP system has it. The
receipt goes to the outbox in the transaction that stamps it, so a Kafka outage during a
read delays it and never loses it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.clients import Client
from adapters.fhir.outcomes import FhirProblem
from adapters.fhir.resources import (
    action_task_resource,
    communication_resource,
    searchset,
    task_resource,
)
from adapters.ledger.repository import Ledger, ReferralRow
from adapters.outbox import Outbox
from adapters.outbox.messages import receipt_message
from services.fhir_gateway.search import communication_query, page_links, task_query

SERVICE = "fhir-gateway"
log = structlog.get_logger("brug.fhir-gateway")


@dataclass(frozen=True)
class Seen:
    """A resource the GP system read: what to audit and what may be a receipt."""

    referral_id: uuid.UUID
    resource_type: str
    resource_id: uuid.UUID
    version: int


@dataclass
class Reads:
    engine: AsyncEngine
    base_url: str

    async def task(self, task_id: uuid.UUID, client: Client) -> dict[str, Any]:
        async with self.engine.connect() as connection:
            found = await connection.run_sync(_task_by_id, task_id, client.organisation)
        if found is None:
            async with self.engine.begin() as connection:
                await connection.run_sync(_audit_refused_task, task_id, client)
            raise FhirProblem(404, "not-found", f"Task/{task_id} is not known", "Task.id")
        resource, seen = found
        await self._record([seen], client, "read-task")
        return resource

    async def communication(self, communication_id: uuid.UUID, client: Client) -> dict[str, Any]:
        query = communication_query([("_id", str(communication_id))], client.organisation)
        async with self.engine.connect() as connection:
            found, _ = await connection.run_sync(lambda c: Ledger(c).search_communications(query))
        if not found:
            raise FhirProblem(
                404, "not-found", f"Communication/{communication_id} is not known", "id"
            )
        row, referral = found[0]
        seen = Seen(row.referral_id, "Communication", row.communication_id, 1)
        await self._record([seen], client, "read-communication")
        return communication_resource(row, referral)

    async def search_tasks(self, params: list[tuple[str, str]], client: Client) -> dict[str, Any]:
        query = task_query(params, client.organisation)
        async with self.engine.connect() as connection:
            rows, total = await connection.run_sync(lambda c: Ledger(c).search_tasks(query))
            resources = [await connection.run_sync(_with_feedback, row) for row in rows]
        await self._record([_seen_task(row) for row in rows], client, "search-task")
        url = f"{self.base_url}/Task"
        links = page_links(url, params, offset=query.offset, count=query.count, total=total)
        return searchset(resources, total, self.base_url, links)

    async def search_communications(
        self, params: list[tuple[str, str]], client: Client
    ) -> dict[str, Any]:
        query = communication_query(params, client.organisation)
        async with self.engine.connect() as connection:
            found, total = await connection.run_sync(
                lambda c: Ledger(c).search_communications(query)
            )
        seen = [Seen(r.referral_id, "Communication", r.communication_id, 1) for r, _ in found]
        await self._record(seen, client, "search-communication")
        url = f"{self.base_url}/Communication"
        links = page_links(url, params, offset=query.offset, count=query.count, total=total)
        resources = [communication_resource(row, referral) for row, referral in found]
        return searchset(resources, total, self.base_url, links)

    async def _record(self, seen: list[Seen], client: Client, action: str) -> None:
        """Audit each referral touched; a receipt for feedback read the first time."""
        if not seen:
            return
        async with self.engine.begin() as connection:
            await connection.run_sync(_audit_and_receipts, seen, client, action)


def _task_by_id(
    connection: Connection, task_id: uuid.UUID, organisation: str
) -> tuple[dict[str, Any], Seen] | None:
    """A referral's Task, or the action Task of a signal; only the requester's."""
    ledger = Ledger(connection)
    row = ledger.referral_by_task(task_id)
    if row is not None and row.requester_agb == organisation:
        return _with_feedback(connection, row), _seen_task(row)
    signal = ledger.communication_with_action_task(task_id)
    referral = ledger.referral(signal.referral_id) if signal else None
    if signal is None or referral is None or referral.requester_agb != organisation:
        # Another organisation's Task answers like a missing one.
        return None
    seen = Seen(signal.referral_id, "Communication", signal.communication_id, 1)
    return action_task_resource(signal, referral), seen


def _audit_refused_task(connection: Connection, task_id: uuid.UUID, client: Client) -> None:
    """A Task read refused (missing, or another practice's: both answer 404) is audited,
    on the referral when the Task is one."""
    row = Ledger(connection).referral_by_task(task_id)
    Ledger(connection).audit(
        actor=f"client:{client.client_id}",
        action="read-task-refused",
        referral_id=row.referral_id if row else None,
        detail={"resource": f"Task/{task_id}", "status": 404},
    )


def _with_feedback(connection: Connection, row: ReferralRow) -> dict[str, Any]:
    feedback = Ledger(connection).feedback_communication(row.referral_id) if row.outcome else None
    return task_resource(row, feedback)


def _seen_task(row: ReferralRow) -> Seen:
    assert row.task_id is not None
    return Seen(row.referral_id, "Task", row.task_id, row.version)


def _audit_and_receipts(
    connection: Connection, seen: list[Seen], client: Client, action: str
) -> None:
    ledger = Ledger(connection)
    now = datetime.now(UTC)
    receipts = []
    for item in seen:
        ledger.audit(
            actor=f"client:{client.client_id}",
            action=action,
            referral_id=item.referral_id,
            detail={"resource": f"{item.resource_type}/{item.resource_id}"},
        )
        receipt = ledger.record_gp_receipt(
            item.resource_type, item.resource_id, item.version, "pull", now
        )
        if receipt is not None:
            receipts.append(receipt_message(receipt, "pull", now, service=SERVICE))
    Outbox(connection).add(*receipts)
