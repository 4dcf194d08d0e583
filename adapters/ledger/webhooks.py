"""The webhook delivery queue in PostgreSQL: enqueue once per event, claim what is due
(``FOR UPDATE SKIP LOCKED``, so replicas never send the same delivery at once), record
each outcome with the next attempt's time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects.postgresql import insert

from adapters.ledger.tables import webhook_deliveries

PENDING, DELIVERED, PARKED = "pending", "delivered", "parked"


@dataclass(frozen=True)
class Delivery:
    event_id: str
    referral_id: UUID
    organisation_id: str
    event: dict[str, Any]
    attempts: int
    created_at: datetime


class WebhookQueue:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def enqueue(
        self,
        event_id: str,
        referral_id: UUID,
        organisation_id: str,
        event: dict[str, Any],
        now: datetime,
    ) -> bool:
        """False when this event was queued before (a redelivered Kafka record)."""
        result = self.connection.execute(
            insert(webhook_deliveries)
            .values(
                event_id=event_id,
                referral_id=referral_id,
                organisation_id=organisation_id,
                event=event,
                state=PENDING,
                next_attempt_at=now,
            )
            .on_conflict_do_nothing(index_elements=["event_id"])
        )
        return bool(result.rowcount)

    def claim_due(self, now: datetime, limit: int = 20) -> list[Delivery]:
        rows = self.connection.execute(
            select(webhook_deliveries)
            .where(
                (webhook_deliveries.c.state == PENDING)
                & (webhook_deliveries.c.next_attempt_at <= now)
            )
            .order_by(webhook_deliveries.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [
            Delivery(
                r.event_id, r.referral_id, r.organisation_id, r.event, r.attempts, r.created_at
            )
            for r in rows
        ]

    def delivered(self, event_id: str, now: datetime) -> None:
        self._update(event_id, state=DELIVERED, finished_at=now, last_error=None)

    def retry_later(self, event_id: str, error: str, next_attempt_at: datetime) -> None:
        self._update(event_id, last_error=error[:500], next_attempt_at=next_attempt_at)

    def park(self, event_id: str, error: str, now: datetime) -> None:
        self._update(event_id, state=PARKED, last_error=error[:500], finished_at=now)

    def state_of(self, event_id: str) -> tuple[str, int, str | None] | None:
        row = self.connection.execute(
            select(
                webhook_deliveries.c.state,
                webhook_deliveries.c.attempts,
                webhook_deliveries.c.last_error,
            ).where(webhook_deliveries.c.event_id == event_id)
        ).one_or_none()
        return (row.state, row.attempts, row.last_error) if row else None

    def counts(self) -> dict[str, int]:
        rows = self.connection.execute(
            select(webhook_deliveries.c.state, func.count()).group_by(webhook_deliveries.c.state)
        )
        return {state: count for state, count in rows}

    def _update(self, event_id: str, **values: Any) -> None:
        self.connection.execute(
            update(webhook_deliveries)
            .where(webhook_deliveries.c.event_id == event_id)
            .values(attempts=webhook_deliveries.c.attempts + 1, **values)
        )
