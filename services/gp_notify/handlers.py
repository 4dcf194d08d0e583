"""The change handler: every ``GpResourceChanged`` on ``brug.gp.changes.<client>.v1`` is
counted for each ``active`` Subscription of that client's GP organisation and POSTed to
its endpoint as a notification Bundle naming the Task or Communication (no content: the GP
system reads it through the FHIR API).

One subscription's notifications arrive in event-number order, whichever partition (one
consumer each, ``BRUG_NOTIFY_WORKERS``) their changes came on: the subscription's row stays
locked from counting the event (its number) until its outcome is recorded, so a change on
another partition waits while an earlier one is being tried, instead of overtaking it when
the endpoint comes back in between. Each event is kept (``subscription_events``) for
``$events``. An endpoint that fails a few quick attempts is retried later with backoff
(``retries.py``, which takes the same lock) and later events queue behind it, so one bad
endpoint never blocks the partition for long and its notices keep their order. A 2xx is a
receipt for the welfare organisation (``FeedbackReceivedByGp``, channel ``push``) the
first time, in the outbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import structlog
from faststream.kafka import KafkaMessage, KafkaRouter
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.fhir.subscriptions import NotificationEvent
from adapters.ledger.repository import Ledger, Receipt
from adapters.ledger.subscriptions import SubscriptionEvent, SubscriptionRow, Subscriptions
from adapters.outbox import Outbox
from adapters.outbox.messages import receipt_message
from adapters.runtime.coalescing import Coalescer
from adapters.runtime.kafka import NEW_GROUP_STARTS_AT, consumer_group, service_router
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.events import FeedbackReceivedByGp
from contracts.events.gp import GpResourceChanged
from domain.backoff import Backoff
from services.gp_notify import SERVICE
from services.gp_notify.endpoints import Endpoints, log_outcome

log = structlog.get_logger(f"brug.{SERVICE}")

DESCRIPTION = (  # the subscribers' entry in the AsyncAPI document
    "Each change is POSTed, id-only, to every active Subscription of the client's GP "
    "organisation, in order per referral; the first 2xx is the welfare organisation's receipt."
)


@dataclass(frozen=True)
class Notifying:
    """What the handler needs, wired by the composition root."""

    engine: AsyncEngine
    endpoints: Endpoints
    gp_organisations: Mapping[str, str]  # which GP organisation (AGB) a client acts for
    backoff: Backoff  # when a failed notification is tried again, and when to give up
    # Changes for one practice handled at once (other partitions) go out in one transaction.
    batches: Coalescer[str, GpResourceChanged] = field(init=False)

    def __post_init__(self) -> None:
        work = partial(notify_batch, self)
        object.__setattr__(self, "batches", Coalescer(work, limit=BATCH_LIMIT))


BATCH_LIMIT = 50  # changes per transaction; more wait for the next


def changes_router(notifying: Notifying, *, workers: int) -> KafkaRouter:
    """One subscriber per GP system's change topic, and the receipts publisher declared."""
    router = service_router()
    # Declared for the AsyncAPI document: the receipt this service raises (the relay
    # publishes it from the outbox).
    router.publisher(
        "brug.social.referrals.{organisation_id}.v1",
        title="brug.social.referrals.{organisation_id}.v1",
        description="The GP system's endpoint acknowledged a notification. Key: referral id.",
        schema=CloudEvent[FeedbackReceivedByGp],
    )

    async def notify_subscriptions(
        event: CloudEvent[GpResourceChanged], message: KafkaMessage
    ) -> None:
        record: Any = message.raw_message  # one ConsumerRecord: not a batch subscriber
        await notify(notifying, record.topic.split(".")[3], event.data)

    # One subscriber per GP system's change topic (from the client registry), each with one
    # consumer per partition: referrals on different partitions are notified concurrently,
    # one referral's notifications stay in order.
    for client_id in notifying.gp_organisations:
        router.subscriber(
            topics.gp_changes(client_id),
            group_id=f"{consumer_group('gp_notify')}.{client_id}",
            auto_offset_reset=NEW_GROUP_STARTS_AT,
            max_workers=workers,
            description=DESCRIPTION,
        )(notify_subscriptions)
    return router


async def notify(notifying: Notifying, client_id: str, change: GpResourceChanged) -> None:
    """Notify ``change`` to the practice's subscriptions; returns once it is recorded (with
    the changes that came meanwhile for the same practice: ``notify_batch``)."""
    organisation = notifying.gp_organisations.get(client_id)
    if organisation is None:
        log.warning("change for an unknown GP client", client_id=client_id)
        return
    await notifying.batches.submit(organisation, change)


async def notify_batch(
    notifying: Notifying, organisation: str, changes: list[GpResourceChanged]
) -> None:
    """Count and keep the changes, deliver them to every subscription at once (each one's in
    order, stopping at a failure; those catching up on earlier failures only queue them),
    then record outcomes and receipts, all in one transaction that keeps the subscriptions'
    rows locked. A change for the same subscription handled meanwhile by another replica
    waits for the outcome, then goes out after it or queues behind it; a crash before the
    commit leaves the changes uncounted, to be counted again on redelivery.
    """
    now = datetime.now(UTC)
    async with notifying.engine.begin() as connection:
        counted = await connection.run_sync(_count, organisation, changes, now)
        if not counted:
            return
        for subscription, _ in counted:
            if subscription.retry_at is not None:
                log.info(
                    "event-notifications queued behind retries",
                    subscription_id=str(subscription.subscription_id),
                    event_number=subscription.events_since_start,
                )
        direct = [(s, events) for s, events in counted if s.retry_at is None]
        outcomes = await asyncio.gather(
            *(_deliver(notifying.endpoints, s, events) for s, events in direct)
        )
        receipts = await connection.run_sync(
            _record_outcomes, notifying.backoff, [s for s, _ in direct], outcomes, now
        )
    for (subscription, _), (delivered, failure) in zip(direct, outcomes, strict=True):
        for event in delivered:
            log_outcome(
                "event-notification",
                subscription,
                None,
                event_number=event.event_number,
                referral_id=str(event.referral_id),
            )
        if failure is not None:
            log_outcome("event-notification", subscription, failure)
    for receipt in receipts:
        log.info("receipt queued", referral_id=str(receipt.referral_id), channel="push")


def _count(
    connection: Connection, organisation: str, changes: list[GpResourceChanged], now: datetime
) -> list[tuple[SubscriptionRow, list[SubscriptionEvent]]]:
    """Each counted subscription with the events it numbered, in the changes' order."""
    store = Subscriptions(connection)
    counted = [
        (row, [_event(row, number, change) for number, change in _numbered(row, changes)])
        for row in store.count_event(organisation, now, events=len(changes))
    ]
    store.record_events([e for _, events in counted for e in events], now)
    return counted


def _numbered(
    row: SubscriptionRow, changes: list[GpResourceChanged]
) -> Iterator[tuple[int, GpResourceChanged]]:
    first = row.events_since_start - len(changes) + 1
    return enumerate(changes, start=first)


def _event(row: SubscriptionRow, number: int, change: GpResourceChanged) -> SubscriptionEvent:
    return SubscriptionEvent(
        subscription_id=row.subscription_id,
        event_number=number,
        referral_id=change.referral_id,
        resource_type=change.resource_type,
        resource_id=change.resource_id,
        version_id=change.version_id,
        occurred_at=change.changed_at,
        delivered_at=None,
    )


async def _deliver(
    endpoints: Endpoints, subscription: SubscriptionRow, events: list[SubscriptionEvent]
) -> tuple[list[SubscriptionEvent], str | None]:
    """POST the events one notification each, in order; what was taken, and why not the
    rest (None: all were)."""
    delivered: list[SubscriptionEvent] = []
    for event in events:
        notice = NotificationEvent(
            number=event.event_number,
            timestamp=event.occurred_at,
            focus=endpoints.url(event.reference()),
        )
        body = endpoints.bundle(
            subscription, "active", "event-notification", event.event_number, notice
        )
        if (failure := await endpoints.post(subscription, body)) is not None:
            return delivered, failure
        delivered.append(event)
    return delivered, None


def _record_outcomes(
    connection: Connection,
    backoff: Backoff,
    direct: list[SubscriptionRow],
    outcomes: list[tuple[list[SubscriptionEvent], str | None]],
    now: datetime,
) -> list[Receipt]:
    """Each delivered event (stamped, audited, and the first time a receipt); a subscription
    that failed is retried later, its events not taken queued for that."""
    store = Subscriptions(connection)
    receipts = []
    for subscription, (delivered, failure) in zip(direct, outcomes, strict=True):
        for event in delivered:
            if (receipt := record_delivery(connection, event, now)) is not None:
                receipts.append(receipt)
        if failure is not None:
            store.retry_later(
                subscription.subscription_id, failure, now, backoff.next_attempt(now, 1)
            )
    return receipts


def record_delivery(
    connection: Connection, event: SubscriptionEvent, now: datetime, *, retried: bool = False
) -> Receipt | None:
    """The endpoint took ``event``: stamped, audited, and the first time the resource's
    version reaches the GP system a receipt into the outbox (a Kafka outage cannot lose it)."""
    Subscriptions(connection).delivered(event.subscription_id, event.event_number, now)
    ledger = Ledger(connection)
    detail: dict[str, Any] = {
        "subscription_id": str(event.subscription_id),
        "resource": event.reference(),
        "version": event.version_id,
        "event_number": event.event_number,
    }
    if retried:
        detail["retried"] = True
    ledger.audit(
        actor=f"service:{SERVICE}",
        action="notified-gp",
        referral_id=event.referral_id,
        detail=detail,
    )
    receipt = ledger.record_gp_receipt(
        event.resource_type,
        event.resource_id,
        event.version_id,
        "push",
        now,
    )
    if receipt is not None:
        Outbox(connection).add(receipt_message(receipt, "push", now, service=SERVICE))
    return receipt
