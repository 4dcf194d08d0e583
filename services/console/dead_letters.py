"""The console's Kafka side: every dead letter on ``brug.deadletter.v1`` is kept in the
ledger, once, its original record sealed (``adapters/sealing.py``), where operators
inspect, replay or discard it."""

from __future__ import annotations

import structlog
from faststream.kafka import KafkaRouter
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.ledger.operations import Operations
from adapters.runtime.kafka import NEW_GROUP_STARTS_AT, consumer_group, service_router
from adapters.sealing import Sealer
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.events.deadletter import DeadLetter
from services.console import SERVICE

log = structlog.get_logger(f"brug.{SERVICE}")


def dead_letter_router(engine: AsyncEngine, sealer: Sealer) -> KafkaRouter:
    router = service_router()

    @router.subscriber(
        topics.DEAD_LETTER, group_id=consumer_group(SERVICE), auto_offset_reset=NEW_GROUP_STARTS_AT
    )
    async def keep_dead_letter(event: CloudEvent[DeadLetter]) -> None:
        async with engine.begin() as connection:
            new = await connection.run_sync(
                lambda c: Operations(c).record_dead_letter(event.id, event.data, sealer)
            )
        if new:  # a redelivered dead letter is already parked: one warning, not two
            log.warning(
                "dead letter parked for operators",
                dead_letter_id=event.id,
                reason=event.data.reason,
                service=event.data.service,
            )

    return router
