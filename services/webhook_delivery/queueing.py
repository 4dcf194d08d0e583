"""The Kafka side of webhook delivery: the ``ReferralCreated`` of each organisation whose
delivery channel is ``webhook`` is queued in ``webhook_deliveries``, once per event id.

Queued, not sent: the queue lives in PostgreSQL, so a restart resumes and a slow receiver
never holds up the partition (``services/webhook_delivery/delivery.py`` sends).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.ledger.repository import Ledger
from adapters.ledger.webhooks import WebhookQueue
from adapters.runtime import Unprocessable
from adapters.runtime.kafka import NEW_GROUP_STARTS_AT, consumer_group, service_router
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.directory import WelfareOrganisation
from contracts.events import FeedbackReceivedByGp, ReferralCreated, ReferralWithdrawn
from domain.referral import Referral
from services.webhook_delivery import SERVICE

SOCIAL_REFERRALS_PATTERN = r"brug\.social\.referrals\.[a-z0-9][a-z0-9-]*\.v1"

log = structlog.get_logger(f"brug.{SERVICE}")

SocialReferralEvent = CloudEvent[ReferralCreated | ReferralWithdrawn | FeedbackReceivedByGp]


def queue_router(
    engine: AsyncEngine, organisations: Mapping[str, WelfareOrganisation]
) -> KafkaRouter:
    """The subscriber on every organisation's referral topic, queueing for ``organisations``
    (the webhook ones) into the ledger behind ``engine``."""
    router = service_router()

    @router.subscriber(
        pattern=SOCIAL_REFERRALS_PATTERN,
        group_id=consumer_group(SERVICE),
        auto_offset_reset=NEW_GROUP_STARTS_AT,
    )
    async def queue_for_webhook(event: SocialReferralEvent, message: KafkaMessage) -> None:
        record: Any = message.raw_message  # one ConsumerRecord: not a batch subscriber
        await queue(engine, organisations, event, topic=record.topic)

    return router


async def queue(
    engine: AsyncEngine,
    organisations: Mapping[str, WelfareOrganisation],
    event: SocialReferralEvent,
    *,
    topic: str,
) -> None:
    data = event.data
    if data.organisation_id not in organisations:
        return  # a Kafka organisation: its case system consumes the topic itself
    if not isinstance(data, ReferralCreated):
        # A pending delivery of a withdrawn referral is parked as withdrawn when its turn
        # comes; receipts are for case systems on the bus (webhook ones poll the status API).
        return
    if topic != topics.social_referrals(data.organisation_id):
        raise Unprocessable("refused", f"names {data.organisation_id} but came on {topic}")
    async with engine.begin() as connection:
        queued = await connection.run_sync(lambda c: _enqueue_if_assigned(c, event, data))
    log.info(
        "webhook queued" if queued else "webhook already queued",
        referral_id=str(data.referral_id),
        event_id=event.id,
    )


def _enqueue_if_assigned(
    connection: Connection, event: SocialReferralEvent, data: ReferralCreated
) -> bool:
    """Queue the delivery only to the organisation the ledger assigned the referral to: the
    details a webhook carries go where the router sent the patient, never where an event
    claims (the router writes the assignment and this event in one transaction)."""
    row = Ledger(connection).referral(data.referral_id)
    if row is None or not Referral.of(row).assigned_to(data.organisation_id):
        raise Unprocessable(
            "refused",
            f"the ledger did not assign referral {data.referral_id} to {data.organisation_id}",
        )
    return WebhookQueue(connection).enqueue(
        event.id,
        data.referral_id,
        data.organisation_id,
        event.model_dump(mode="json", exclude_none=True),
        datetime.now(UTC),
    )
