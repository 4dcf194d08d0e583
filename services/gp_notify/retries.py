"""The rest-hook retries (every ``BRUG_NOTIFY_POLL_SECONDS``): a subscription whose endpoint
failed is tried again with the webhooks' backoff (``domain/backoff.py``: 30 s doubling to
1 h by default) until ``BRUG_NOTIFY_GIVE_UP_SECONDS`` (24 h) after its first failure; then
it goes to ``error``, as the Backport IG's ``$status`` shows, and the GP system recovers
what it missed with ``$events``.

A due subscription is claimed (row locked) and caught up in one transaction: its
undelivered events in event-number order, stopping at the first failure, so one referral's
notices never overtake each other. With nothing undelivered (a failed heartbeat), a
heartbeat is the probe. Once all are delivered the retry state is cleared under the same
lock, so an event counted meanwhile either queues (and is sent next round) or goes straight
out after. Old events are purged after ``BRUG_NOTIFY_EVENTS_KEEP_DAYS``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.fhir.subscriptions import NotificationEvent
from adapters.ledger.subscriptions import SubscriptionEvent, SubscriptionRow, Subscriptions
from domain.backoff import Backoff
from services.gp_notify import SERVICE
from services.gp_notify.endpoints import Endpoints, log_outcome
from services.gp_notify.handlers import record_delivery

log = structlog.get_logger(f"brug.{SERVICE}")

BATCH = 50  # events per subscription per round; the rest follow in the next round
PURGE_EVERY = timedelta(minutes=10)

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


class Retries:
    """``run_once`` is one round; ``run_forever`` the loop. ``clock`` is for tests."""

    def __init__(
        self,
        engine: AsyncEngine,
        endpoints: Endpoints,
        backoff: Backoff,
        *,
        poll_seconds: float,
        keep_events: timedelta,
        clock: Clock = _now,
    ) -> None:
        self._engine = engine
        self._endpoints = endpoints
        self._backoff = backoff
        self._poll_seconds = poll_seconds
        self._keep_events = keep_events
        self._clock = clock
        self._purged_at: datetime | None = None

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
                await self._purge()
            except Exception:
                log.exception("retry round failed; trying again")
            await asyncio.sleep(self._poll_seconds)

    async def run_once(self) -> int:
        """Catch up every due subscription; how many were tried."""
        now = self._clock()
        async with self._engine.begin() as connection:
            due = await connection.run_sync(lambda c: Subscriptions(c).claim_retries_due(now))
            if not due:
                return 0
            backlogs = await connection.run_sync(
                lambda c: [Subscriptions(c).undelivered(s.subscription_id, BATCH) for s in due]
            )
            # Subscriptions at once, each one's events in order.
            outcomes = await asyncio.gather(
                *(self._catch_up(s, events) for s, events in zip(due, backlogs, strict=True))
            )
            sent_at = self._clock()
            for subscription, (delivered, failure) in zip(due, outcomes, strict=True):
                await connection.run_sync(self._settle, subscription, delivered, failure, sent_at)
        return len(due)

    async def _catch_up(
        self, subscription: SubscriptionRow, events: list[SubscriptionEvent]
    ) -> tuple[list[SubscriptionEvent], str | None]:
        if not events:  # nothing missed (a heartbeat failed): a heartbeat probes the endpoint
            body = self._endpoints.bundle(
                subscription, "active", "heartbeat", subscription.events_since_start
            )
            return [], await self._endpoints.post(subscription, body)
        delivered: list[SubscriptionEvent] = []
        for event in events:
            notice = NotificationEvent(
                number=event.event_number,
                timestamp=event.occurred_at,
                focus=self._endpoints.url(event.reference()),
            )
            body = self._endpoints.bundle(
                subscription,
                "active",
                "event-notification",
                subscription.events_since_start,
                notice,
            )
            failure = await self._endpoints.post(subscription, body)
            if failure is not None:
                return delivered, failure
            delivered.append(event)
        return delivered, None

    def _settle(
        self,
        connection: Connection,
        subscription: SubscriptionRow,
        delivered: list[SubscriptionEvent],
        failure: str | None,
        now: datetime,
    ) -> None:
        store = Subscriptions(connection)
        for event in delivered:
            record_delivery(connection, event, now, retried=True)
            log_outcome(
                "event-notification",
                subscription,
                None,
                event_number=event.event_number,
                referral_id=str(event.referral_id),
                retried=True,
            )
        identifier = subscription.subscription_id
        if failure is None:
            if store.caught_up(identifier, now):
                log.info("subscription caught up", subscription_id=str(identifier))
            return
        failing_since = subscription.failing_since or now
        if self._backoff.gives_up(now, failing_since):
            hours = self._backoff.give_up_after_seconds / 3600
            store.failed(identifier, f"{failure}; retried for {hours:g} h, given up")
            log_outcome("event-notification", subscription, failure, given_up=True)
            return
        attempts = subscription.retry_attempts + 1
        store.retry_later(identifier, failure, now, self._backoff.next_attempt(now, attempts))
        log.info(
            "notification retry failed; trying again later",
            subscription_id=str(identifier),
            attempts=attempts,
            error=failure,
        )

    async def _purge(self) -> None:
        now = self._clock()
        if self._purged_at is not None and now - self._purged_at < PURGE_EVERY:
            return
        self._purged_at = now
        before = now - self._keep_events
        async with self._engine.begin() as connection:
            purged = await connection.run_sync(lambda c: Subscriptions(c).purge_events(before))
        if purged:
            log.info("old subscription events purged", count=purged)
