"""The outbox table: events written in the transaction of the change they follow, and
what the relay needs to publish and stamp them.

Writing an event here instead of publishing it makes "committed" and "will be published"
the same thing: a change that rolls back leaves no event, and a committed one is published
whatever crashes in between (the relay retries until Kafka acknowledges).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, delete, insert, select, text, update

from adapters.ledger.tables import communications, outbox, referrals
from adapters.runtime.tracing import current_traceparent
from contracts.cloudevents import CloudEvent
from contracts.events import GpResourceChanged, ReferralCreated, ReferralSubmitted

NOTIFY_CHANNEL = "brug_outbox"
CLOUDEVENTS_JSON = "application/cloudevents+json"

# Events whose publication the ledger also keeps on the referral (the timeline shows when
# Kafka acknowledged them; the outbox row itself is purged soon after).
_REFERRAL_STAMPS = {
    ReferralSubmitted.EVENT_TYPE: referrals.c.submitted_event_published_at,
    ReferralCreated.EVENT_TYPE: referrals.c.routed_event_published_at,
}


@dataclass(frozen=True)
class OutboxMessage:
    topic: str
    key: str
    value: bytes
    event_type: str
    referral_id: UUID | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PendingMessage:
    """An outbox row not yet acknowledged by Kafka."""

    id: int
    topic: str
    key: str
    value: bytes
    event_type: str
    referral_id: UUID | None
    headers: dict[str, str]
    created_at: datetime


def cloudevent_message(
    event: CloudEvent[Any],
    topic: str,
    *,
    referral_id: UUID | None,
    headers: Mapping[str, str] | None = None,
) -> OutboxMessage:
    """A structured-mode CloudEvent keyed by its referral (so in order per referral), with
    the current trace context, so the relay's publish continues the referral's trace."""
    all_headers = {"content-type": CLOUDEVENTS_JSON, **(headers or {})}
    if traceparent := current_traceparent():
        all_headers["traceparent"] = traceparent
    return OutboxMessage(
        topic=topic,
        key=str(referral_id) if referral_id is not None else event.id,
        value=event.to_json_bytes(),
        event_type=event.type,
        referral_id=referral_id,
        headers=all_headers,
    )


def _communication_announced(message: PendingMessage) -> UUID | None:
    """The Communication whose notice this is, if it is one (the timeline shows when the
    GP system could know of it)."""
    if message.event_type != GpResourceChanged.EVENT_TYPE:
        return None
    notice = CloudEvent[GpResourceChanged].model_validate_json(message.value).data
    return notice.resource_id if notice.resource_type == "Communication" else None


_NOTIFIED_IN = "brug_outbox_notified_in"  # connection.info: the transaction that sent it


class Outbox:
    """The outbox through one open connection; the caller owns the transaction."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def add(self, *messages: OutboxMessage) -> None:
        """Queue ``messages`` for publication once the caller's transaction commits."""
        if not messages:
            return
        self.connection.execute(
            insert(outbox),
            [
                {
                    "topic": message.topic,
                    "key": message.key,
                    "value": message.value,
                    "headers": dict(message.headers),
                    "event_type": message.event_type,
                    "referral_id": message.referral_id,
                }
                for message in messages
            ],
        )
        # Delivered at commit (and not at all on rollback): the relay wakes at once. Once
        # per transaction is enough (PostgreSQL folds repeats anyway): a round trip saved
        # for every further add, as when one transaction records several receipts.
        transaction = self.connection.get_transaction()
        if self.connection.info.get(_NOTIFIED_IN) is not transaction:
            self.connection.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
            self.connection.info[_NOTIFIED_IN] = transaction

    def claim(self, limit: int) -> list[PendingMessage]:
        """The oldest unpublished rows, locked until the caller's transaction ends.

        Locked, not skipped: a second relay waits for the first one's batch instead of
        publishing later events of the same referral ahead of it."""
        rows = self.connection.execute(
            select(outbox)
            .where(outbox.c.published_at.is_(None) & outbox.c.parked_at.is_(None))
            .order_by(outbox.c.id)
            .limit(limit)
            .with_for_update()
        ).all()
        return [
            PendingMessage(
                id=row.id,
                topic=row.topic,
                key=row.key,
                value=bytes(row.value),
                event_type=row.event_type,
                referral_id=row.referral_id,
                headers=dict(row.headers),
                created_at=row.created_at,
            )
            for row in rows
        ]

    def mark_published(self, published: Sequence[PendingMessage], at: datetime) -> None:
        if not published:
            return
        self.connection.execute(
            update(outbox)
            .where(outbox.c.id.in_([message.id for message in published]))
            .values(published_at=at)
        )
        for event_type, column in _REFERRAL_STAMPS.items():
            stamped = [m.referral_id for m in published if m.event_type == event_type]
            if stamped:
                self.connection.execute(
                    update(referrals)
                    .where(referrals.c.referral_id.in_(stamped) & column.is_(None))
                    .values({column.key: at})
                )
        if told := [i for m in published if (i := _communication_announced(m)) is not None]:
            self.connection.execute(
                update(communications)
                .where(
                    communications.c.communication_id.in_(told)
                    & communications.c.published_at.is_(None)
                )
                .values(published_at=at)
            )

    def park(self, parked: Sequence[tuple[PendingMessage, str]], at: datetime) -> None:
        """Kafka would not take these: kept, with why, for an operator; never claimed again."""
        for message, reason in parked:
            self.connection.execute(
                update(outbox)
                .where(outbox.c.id == message.id)
                .values(parked_at=at, parked_reason=reason[:255])
            )

    def purge_published(self, before: datetime) -> int:
        """Published rows are kept a while for operators, then deleted."""
        result = self.connection.execute(delete(outbox).where(outbox.c.published_at < before))
        return result.rowcount or 0

    def pending_count(self) -> int:
        return int(
            self.connection.execute(
                text("SELECT count(*) FROM outbox WHERE published_at IS NULL AND parked_at IS NULL")
            ).scalar_one()
        )
