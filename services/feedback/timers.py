"""The service-level timer loop: ``brug.referrals.overdue.v1`` when an organisation has not
received a referral, or made first contact, by its due date.

The timers live in the ledger, so they survive restarts. Each is stamped and its
``ReferralOverdue`` written to the outbox in one transaction: it is raised once (by any
replica), and a Kafka outage only delays it.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import structlog
from faststream.kafka import KafkaBroker
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.ledger.repository import DueTimer, Ledger
from adapters.outbox import Outbox, cloudevent_message
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.events import ReferralOverdue
from contracts.events.referral import ServiceLevelTimer
from domain.events import Overdue
from domain.referral import Referral, events_of
from services.feedback import EVENT_IDS, SERVICE

log = structlog.get_logger(f"brug.{SERVICE}")


def declare_overdue(broker: KafkaBroker) -> None:
    """Declared for the AsyncAPI document: this service raises it (the relay publishes it
    from the outbox)."""
    broker.publisher(
        topics.OVERDUE,
        title=topics.OVERDUE,
        description="A service-level timer ran out. Key: referral id.",
        schema=CloudEvent[ReferralOverdue],
    )


class TimerWatch:
    """Raises the timers that ran out; ``run_forever`` is the loop."""

    def __init__(self, engine: AsyncEngine, *, poll_seconds: float) -> None:
        self._engine = engine
        self._poll_seconds = poll_seconds

    async def run_forever(self) -> None:
        while True:
            try:
                await self.raise_overdue_timers()
            except Exception:  # keep watching; the next round retries what failed
                log.exception("timer round failed")
            await asyncio.sleep(self._poll_seconds)

    async def raise_overdue_timers(self) -> int:
        """One round: every timer that ran out is raised; returns how many this round
        raised (a timer another replica stamped first is not counted)."""
        now = datetime.now(UTC)
        async with self._engine.connect() as connection:
            timers = await connection.run_sync(lambda c: Ledger(c).due_timers(now))
        raised = 0
        for timer in timers:
            async with self._engine.begin() as connection:
                stamped = await connection.run_sync(_raise_overdue, timer, now)
            if not stamped:
                continue
            raised += 1
            log.warning(
                "service level missed", referral_id=str(timer.referral_id), timer=timer.timer
            )
        return raised


def _raise_overdue(connection: Connection, timer: DueTimer, now: datetime) -> bool:
    """Under the referral's row lock the aggregate decides: the timer may have been stamped
    by another replica, or the organisation may have reported meanwhile."""
    ledger = Ledger(connection)
    row = ledger.referral_for_update(timer.referral_id)
    if row is None:
        return False
    outcome = Referral.of(row).mark_overdue(now)
    overdue = [event for event in events_of(outcome) if isinstance(event, Overdue)]
    if not overdue:
        return False
    (missed,) = overdue
    ledger.stamp_overdue(missed.referral_id, missed.timer, now)
    event = ReferralOverdue(
        referral_id=missed.referral_id,
        organisation_id=missed.organisation_id,
        timer=ServiceLevelTimer(missed.timer),
        due_at=missed.due_at,
        detected_at=now,
    )
    event_id = str(uuid.uuid5(EVENT_IDS, f"overdue/{missed.referral_id}/{missed.timer}"))
    wrapped = CloudEvent[ReferralOverdue].wrap(event, service=SERVICE, event_id=event_id)
    Outbox(connection).add(
        cloudevent_message(wrapped, topics.OVERDUE, referral_id=missed.referral_id)
    )
    return True
