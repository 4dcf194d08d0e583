"""GP systems' FHIR Subscriptions in PostgreSQL (table ``subscriptions``).

Status: ``requested`` (posted, handshake not yet answered) → ``active`` → ``error`` (the
endpoint failed) or ``off`` (deleted by the GP system). The event counter is incremented
in the database (``events_since_start``), so numbers stay unique across restarts and
replicas. The handshake/heartbeat claims lock their rows (``FOR UPDATE SKIP LOCKED``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, func, insert, literal, select, update

from adapters.ledger.tables import subscriptions

REQUESTED, ACTIVE, ERROR, OFF = "requested", "active", "error", "off"
MAX_ERROR_LENGTH = 500


@dataclass(frozen=True)
class SubscriptionRow:
    subscription_id: UUID
    client_id: str
    organisation: str
    topic: str
    endpoint: str
    headers: list[str]
    heartbeat_seconds: int | None
    status: str
    events_since_start: int
    last_sent_at: datetime | None
    error: str | None
    created_at: datetime
    resource: dict[str, Any]


def _row(row: Any) -> SubscriptionRow:
    return SubscriptionRow(
        subscription_id=row.subscription_id,
        client_id=row.client_id,
        organisation=row.organisation,
        topic=row.topic,
        endpoint=row.endpoint,
        headers=list(row.headers or []),
        heartbeat_seconds=row.heartbeat_seconds,
        status=row.status,
        events_since_start=row.events_since_start,
        last_sent_at=row.last_sent_at,
        error=row.error,
        created_at=row.created_at,
        resource=row.resource,
    )


class Subscriptions:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def create(
        self,
        *,
        subscription_id: UUID,
        client_id: str,
        organisation: str,
        topic: str,
        endpoint: str,
        headers: list[str],
        heartbeat_seconds: int | None,
        resource: dict[str, Any],
        at: datetime,
    ) -> None:
        self.connection.execute(
            insert(subscriptions).values(
                subscription_id=subscription_id,
                client_id=client_id,
                organisation=organisation,
                topic=topic,
                endpoint=endpoint,
                headers=headers,
                heartbeat_seconds=heartbeat_seconds,
                status=REQUESTED,
                events_since_start=0,
                created_at=at,
                resource=resource,
            )
        )

    def live_count_locked(self, client_id: str) -> int:
        """How many of the client's subscriptions are requested or active, counted under a
        transaction-level lock on the client, so two creations at once cannot both pass
        a limit."""
        self.connection.execute(select(func.pg_advisory_xact_lock(func.hashtext(client_id))))
        return self.connection.execute(
            select(func.count())
            .select_from(subscriptions)
            .where(
                (subscriptions.c.client_id == client_id)
                & subscriptions.c.status.in_((REQUESTED, ACTIVE))
            )
        ).scalar_one()

    def get(self, subscription_id: UUID, organisation: str) -> SubscriptionRow | None:
        """The subscription if it belongs to ``organisation`` (else as if it did not exist)."""
        row = self.connection.execute(
            select(subscriptions).where(
                (subscriptions.c.subscription_id == subscription_id)
                & (subscriptions.c.organisation == organisation)
            )
        ).one_or_none()
        return None if row is None else _row(row)

    def turn_off(self, subscription_id: UUID, organisation: str) -> bool:
        row = self.connection.execute(
            update(subscriptions)
            .where(
                (subscriptions.c.subscription_id == subscription_id)
                & (subscriptions.c.organisation == organisation)
            )
            .values(status=OFF)
            .returning(subscriptions.c.subscription_id)
        ).first()
        return row is not None

    def count_event(self, organisation: str, at: datetime) -> list[SubscriptionRow]:
        """Count one more event for every active subscription of the organisation, in one
        statement; each row comes back with its new ``events_since_start``. The send is
        stamped now (it follows at once; a failure puts the subscription in error), so the
        heartbeat clock restarts without a second write to the same row."""
        rows = self.connection.execute(
            update(subscriptions)
            .where(
                (subscriptions.c.organisation == organisation) & (subscriptions.c.status == ACTIVE)
            )
            .values(events_since_start=subscriptions.c.events_since_start + 1, last_sent_at=at)
            .returning(*subscriptions.c)
        )
        return sorted((_row(r) for r in rows), key=lambda r: (r.created_at, r.subscription_id))

    def claim_requested(self, limit: int = 20) -> list[SubscriptionRow]:
        """Subscriptions waiting for their handshake, locked until the transaction ends."""
        rows = self.connection.execute(
            select(subscriptions)
            .where(subscriptions.c.status == REQUESTED)
            .order_by(subscriptions.c.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [_row(r) for r in rows]

    def claim_heartbeats_due(self, now: datetime, limit: int = 50) -> list[SubscriptionRow]:
        """Active subscriptions with a heartbeat period that sent nothing for that long."""
        since = func.coalesce(subscriptions.c.last_sent_at, subscriptions.c.created_at)
        period = subscriptions.c.heartbeat_seconds * literal(timedelta(seconds=1))
        rows = self.connection.execute(
            select(subscriptions)
            .where(
                (subscriptions.c.status == ACTIVE)
                & subscriptions.c.heartbeat_seconds.is_not(None)
                & (since + period <= now)
            )
            .order_by(since)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [_row(r) for r in rows]

    def sent(self, subscription_id: UUID, at: datetime, *, activate: bool = False) -> None:
        values: dict[str, Any] = {"last_sent_at": at}
        condition = subscriptions.c.subscription_id == subscription_id
        if activate:
            values.update(status=ACTIVE, error=None)
            condition &= subscriptions.c.status == REQUESTED
        else:
            condition &= subscriptions.c.status == ACTIVE
        self.connection.execute(update(subscriptions).where(condition).values(**values))

    def failed(self, subscription_id: UUID, reason: str) -> None:
        """The endpoint did not take a notification: ``error`` (unless turned off)."""
        self.connection.execute(
            update(subscriptions)
            .where(
                (subscriptions.c.subscription_id == subscription_id)
                & subscriptions.c.status.in_([REQUESTED, ACTIVE])
            )
            .values(status=ERROR, error=reason[:MAX_ERROR_LENGTH])
        )
