"""The monitor's Kafka handler: every record of Brug's event topics (submitted, overdue,
each organisation's referral and status topics, one pattern subscription) folded into the
dataset by ``adapters/monitor/projection.py``, one transaction per record.

A pattern, not one subscriber per directory organisation: an organisation that left the
directory still has referrals to count, and a new one is read without a restart. The
monitor only reads: it publishes nothing and parks nothing (what it skips, the topic's
owning service answers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from faststream.kafka import KafkaMessage, KafkaRouter
from faststream.message import StreamMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.monitor.projection import MONITORED_TOPICS, Outcome, apply_record, counted
from adapters.runtime.kafka import NEW_GROUP_STARTS_AT, consumer_group, service_router
from services.monitor import SERVICE

log = structlog.get_logger(f"brug.{SERVICE}")

DESCRIPTION = (
    "Brug's own events: ReferralSubmitted, ReferralOverdue, and per organisation "
    "ReferralCreated, ReferralWithdrawn, receipts, status reports and signals. Each type is "
    "counted only from the topic Brug sends it on; repeats of an event id change nothing."
)


@dataclass(frozen=True)
class Dataset:
    """What the handler needs, wired by the composition root."""

    engine: AsyncEngine
    key: str

    async def apply(self, topic: str, value: bytes) -> Outcome:
        async with self.engine.begin() as connection:
            return await connection.run_sync(apply_record, topic, value, self.key)


async def undecoded(message: StreamMessage[Any], default: Any) -> bytes:
    """The record stays bytes: ``adapters/monitor/projection.py`` reads the envelope."""
    return bytes(message.body)


def event_router(dataset: Dataset) -> KafkaRouter:
    router = service_router()

    async def handle_event(body: bytes, message: KafkaMessage) -> None:
        record: Any = message.raw_message  # one ConsumerRecord: not a batch subscriber
        outcome = counted(await dataset.apply(record.topic, body))
        if outcome is Outcome.UNREADABLE:
            log.warning("record the monitor cannot read skipped", topic=record.topic)

    router.subscriber(
        pattern=MONITORED_TOPICS.pattern,
        group_id=consumer_group(SERVICE),
        auto_offset_reset=NEW_GROUP_STARTS_AT,
        title="brug.referrals.{submitted,overdue}.v1, brug.social.{referrals,status}.<org>.v1",
        description=DESCRIPTION,
        decoder=undecoded,
    )(handle_event)
    return router
