"""GP systems' FHIR Subscriptions in PostgreSQL (table ``subscriptions``).

Status: ``requested`` (posted, handshake not yet answered) → ``active`` → ``error`` (the
endpoint failed) or ``off`` (deleted by the GP system). The event counter is incremented
in the database (``events_since_start``), so numbers stay unique across restarts and
replicas. The handshake/heartbeat claims lock their rows (``FOR UPDATE SKIP LOCKED``).

Every event is kept in ``subscription_events`` (ids only) for ``$events`` and the rest-hook
retries: a failed notification leaves the subscription ``active`` with ``retry_at`` set
(and ``error`` saying why); until it catches up, later events queue behind it, so a
subscription's notices keep their event-number order. Only a failure lasting past the
retry window (24 h by default) puts it in ``error``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, delete, func, insert, literal, select, update

from adapters.ledger.tables import subscription_events, subscriptions

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
    failing_since: datetime | None = None
    retry_attempts: int = 0
    retry_at: datetime | None = None  # None: not failing


@dataclass(frozen=True)
class SubscriptionEvent:
    """One event as the subscription counted it: what changed (ids only) and when."""

    subscription_id: UUID
    event_number: int
    referral_id: UUID
    resource_type: str  # Task | Communication
    resource_id: UUID
    version_id: int
    occurred_at: datetime
    delivered_at: datetime | None

    def reference(self) -> str:
        return f"{self.resource_type}/{self.resource_id}"


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
        failing_since=row.failing_since,
        retry_attempts=row.retry_attempts,
        retry_at=row.retry_at,
    )


def _event(row: Any) -> SubscriptionEvent:
    return SubscriptionEvent(
        subscription_id=row.subscription_id,
        event_number=row.event_number,
        referral_id=row.referral_id,
        resource_type=row.resource_type,
        resource_id=row.resource_id,
        version_id=row.version_id,
        occurred_at=row.occurred_at,
        delivered_at=row.delivered_at,
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

    def count_event(
        self, organisation: str, at: datetime, *, events: int = 1
    ) -> list[SubscriptionRow]:
        """Count ``events`` more for every active subscription of the organisation, in one
        statement; each row comes back with its new ``events_since_start`` (the last of the
        numbers it gave, which run consecutively), locked until the
        caller's transaction ends (it sends and records the outcome before committing, so
        the next event of a subscription cannot overtake this one). Rows are locked in id
        order: two changes counted at once wait for each other instead of deadlocking.
        The send is stamped now (it follows at once; a failure sets ``retry_at``), so the
        heartbeat clock restarts without a second write to the same row."""
        locked = (
            select(subscriptions.c.subscription_id)
            .where(
                (subscriptions.c.organisation == organisation) & (subscriptions.c.status == ACTIVE)
            )
            .order_by(subscriptions.c.subscription_id)
            .with_for_update()
        )
        rows = self.connection.execute(
            update(subscriptions)
            .where(
                subscriptions.c.subscription_id.in_(locked.scalar_subquery())
                & (subscriptions.c.status == ACTIVE)
            )
            .values(events_since_start=subscriptions.c.events_since_start + events, last_sent_at=at)
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
                & subscriptions.c.retry_at.is_(None)  # a failing one is probed by the retries
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

    # -- the events: $events and the retries ------------------------------------------

    def record_events(self, events: list[SubscriptionEvent], at: datetime) -> None:
        """The events the subscriptions numbered, kept for ``$events`` and the retries."""
        if not events:
            return
        self.connection.execute(
            insert(subscription_events),
            [
                {
                    "subscription_id": e.subscription_id,
                    "event_number": e.event_number,
                    "referral_id": e.referral_id,
                    "resource_type": e.resource_type,
                    "resource_id": e.resource_id,
                    "version_id": e.version_id,
                    "occurred_at": e.occurred_at,
                    "recorded_at": at,
                }
                for e in events
            ],
        )

    def events(
        self, subscription_id: UUID, since: int, until: int, limit: int
    ) -> list[SubscriptionEvent]:
        """Events ``since``..``until`` (inclusive) still kept, oldest first, at most ``limit``."""
        rows = self.connection.execute(
            select(subscription_events)
            .where(
                (subscription_events.c.subscription_id == subscription_id)
                & subscription_events.c.event_number.between(since, until)
            )
            .order_by(subscription_events.c.event_number)
            .limit(limit)
        )
        return [_event(r) for r in rows]

    def undelivered(self, subscription_id: UUID, limit: int) -> list[SubscriptionEvent]:
        rows = self.connection.execute(
            select(subscription_events)
            .where(
                (subscription_events.c.subscription_id == subscription_id)
                & subscription_events.c.delivered_at.is_(None)
            )
            .order_by(subscription_events.c.event_number)
            .limit(limit)
        )
        return [_event(r) for r in rows]

    def delivered(self, subscription_id: UUID, event_number: int, at: datetime) -> None:
        self.connection.execute(
            update(subscription_events)
            .where(
                (subscription_events.c.subscription_id == subscription_id)
                & (subscription_events.c.event_number == event_number)
            )
            .values(delivered_at=at)
        )

    def retry_later(self, subscription_id: UUID, reason: str, now: datetime, at: datetime) -> None:
        """A notification failed: stay ``active``, try again ``at``; ``error`` says why."""
        self.connection.execute(
            update(subscriptions)
            .where(
                (subscriptions.c.subscription_id == subscription_id)
                & (subscriptions.c.status == ACTIVE)
            )
            .values(
                failing_since=func.coalesce(subscriptions.c.failing_since, now),
                retry_attempts=subscriptions.c.retry_attempts + 1,
                retry_at=at,
                error=reason[:MAX_ERROR_LENGTH],
            )
        )

    def claim_retries_due(self, now: datetime, limit: int = 20) -> list[SubscriptionRow]:
        """Active subscriptions whose next try is due, locked until the transaction ends."""
        rows = self.connection.execute(
            select(subscriptions)
            .where((subscriptions.c.status == ACTIVE) & (subscriptions.c.retry_at <= now))
            .order_by(subscriptions.c.retry_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [_row(r) for r in rows]

    def caught_up(self, subscription_id: UUID, at: datetime) -> bool:
        """Clear the retry state if nothing is left undelivered (the row is locked by the
        caller's claim, so an event counted meanwhile waits and then sees it)."""
        if self.undelivered(subscription_id, 1):
            self.connection.execute(
                update(subscriptions)
                .where(subscriptions.c.subscription_id == subscription_id)
                .values(retry_at=at)  # more to send: the next round goes on
            )
            return False
        self.connection.execute(
            update(subscriptions)
            .where(subscriptions.c.subscription_id == subscription_id)
            .values(
                failing_since=None, retry_attempts=0, retry_at=None, error=None, last_sent_at=at
            )
        )
        return True

    def purge_events(self, before: datetime) -> int:
        """Forget events recorded before ``before`` (``$events`` no longer has them)."""
        result = self.connection.execute(
            delete(subscription_events).where(subscription_events.c.recorded_at < before)
        )
        return result.rowcount or 0
