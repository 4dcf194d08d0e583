"""Webhook delivery service.

Kafka side: referral events of organisations whose delivery channel is ``webhook`` are
queued in PostgreSQL (once per event id). Delivery side: a loop claims due deliveries,
POSTs the minimised referral (event + details) signed with HMAC-SHA256, and records the
outcome; failures back off exponentially and are parked after ``webhook_max_age_seconds``
(24 h by default) with a dead letter. The queue lives in the database, so a restart resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from datetime import UTC, datetime

import httpx
import structlog
from sqlalchemy import Connection

from adapters.database import make_async_engine
from adapters.directory import load_directory
from adapters.ledger.repository import Ledger
from adapters.ledger.webhooks import Delivery, WebhookQueue
from adapters.runtime import configure_logging, make_app, make_broker
from adapters.runtime.kafka import consumer_group
from adapters.runtime.metrics import DEAD_LETTERED, WEBHOOK_ATTEMPTS
from adapters.runtime.tracing import span
from adapters.webhooks import post_signed
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.codes import ReferralStatus
from contracts.directory import DeliveryChannel, WelfareOrganisation
from contracts.events import (
    DeadLetter,
    FeedbackReceivedByGp,
    ReferralCreated,
    ReferralWithdrawn,
)
from services.webhook_delivery.schedule import next_attempt, should_park
from services.webhook_delivery.settings import WebhookSettings

SERVICE = "webhook-delivery"
SOCIAL_REFERRALS_PATTERN = r"brug\.social\.referrals\.[a-z0-9][a-z0-9-]*\.v1"

settings = WebhookSettings()
configure_logging(SERVICE, settings.log_level, settings.log_format)
log = structlog.get_logger(f"brug.{SERVICE}")
directory = load_directory(settings.directory_path)
webhook_organisations = {
    o.id: o for o in directory.organisations if o.delivery is DeliveryChannel.WEBHOOK
}
engine = make_async_engine(settings.database_url)
broker = make_broker(settings, service=SERVICE)
app = make_app(
    broker,
    service=SERVICE,
    description="Delivers referrals to welfare organisations without Kafka by signed webhook.",
)
dead_letters = broker.publisher(
    topics.DEAD_LETTER,
    title=topics.DEAD_LETTER,
    description="Deliveries parked after the retry window. Key: referral id.",
    schema=CloudEvent[DeadLetter],
)


@broker.subscriber(pattern=SOCIAL_REFERRALS_PATTERN, group_id=consumer_group(SERVICE))
async def queue_for_webhook(
    event: CloudEvent[ReferralCreated | ReferralWithdrawn | FeedbackReceivedByGp],
) -> None:
    if event.data.organisation_id not in webhook_organisations:
        return  # a Kafka organisation: its case system consumes the topic itself
    if not isinstance(event.data, ReferralCreated):
        # A pending delivery of a withdrawn referral is parked as withdrawn when its turn
        # comes; receipts are for case systems on the bus (webhook ones poll the status API).
        return
    async with engine.begin() as connection:
        queued = await connection.run_sync(
            lambda c: WebhookQueue(c).enqueue(
                event.id,
                event.data.referral_id,
                event.data.organisation_id,
                event.model_dump(mode="json", exclude_none=True),
                datetime.now(UTC),
            )
        )
    log.info(
        "webhook queued" if queued else "webhook already queued",
        referral_id=str(event.data.referral_id),
        event_id=event.id,
    )


async def deliver_forever() -> None:
    async with httpx.AsyncClient(timeout=settings.webhook_timeout_seconds) as http:
        while True:
            try:
                await deliver_due(http)
            except Exception:
                log.exception("delivery round failed; trying again")
            await asyncio.sleep(settings.webhook_poll_seconds)


async def deliver_due(http: httpx.AsyncClient) -> None:
    """One round: each due delivery is claimed, attempted and recorded in one transaction,
    so two replicas never send the same delivery and a crash leaves it pending."""
    async with engine.begin() as connection:
        due = await connection.run_sync(lambda c: WebhookQueue(c).claim_due(datetime.now(UTC)))
        for delivery in due:
            # Continues the referral's trace, carried in the queued event.
            with span(
                "webhook delivery",
                traceparent=delivery.event.get("traceparent"),
                referral_id=delivery.referral_id,
                event_id=delivery.event_id,
            ):
                await _attempt(connection, http, delivery)


async def _attempt(connection: object, http: httpx.AsyncClient, delivery: Delivery) -> None:
    run = connection.run_sync  # type: ignore[attr-defined]
    organisation = webhook_organisations.get(delivery.organisation_id)
    now = datetime.now(UTC)
    details = await run(_deliverable_details, delivery)
    if organisation is None or details is None:
        reason = "organisation no longer uses webhooks" if organisation is None else "withdrawn"
        await run(lambda c: WebhookQueue(c).park(delivery.event_id, reason, now))
        return
    body = json.dumps({"event": delivery.event, "details": details}).encode()
    attempt = await post_signed(
        http, str(organisation.webhook_url), _secret(organisation), body, delivery.event_id
    )
    if attempt.ok:
        WEBHOOK_ATTEMPTS.labels(service=SERVICE, outcome="delivered").inc()
        await run(_delivered, delivery, now)
        log.info(
            "webhook delivered",
            referral_id=str(delivery.referral_id),
            attempts=delivery.attempts + 1,
        )
    elif should_park(now, delivery.created_at, settings.webhook_max_age_seconds):
        WEBHOOK_ATTEMPTS.labels(service=SERVICE, outcome="parked").inc()
        await run(lambda c: WebhookQueue(c).park(delivery.event_id, attempt.detail, now))
        await _dead_letter(delivery, attempt.detail)
    else:
        WEBHOOK_ATTEMPTS.labels(service=SERVICE, outcome="retry").inc()
        retry_at = next_attempt(
            now,
            delivery.attempts + 1,
            settings.webhook_backoff_base_seconds,
            settings.webhook_backoff_max_seconds,
        )
        await run(
            lambda c: WebhookQueue(c).retry_later(delivery.event_id, attempt.detail, retry_at)
        )
        log.warning(
            "webhook failed, will retry",
            referral_id=str(delivery.referral_id),
            error=attempt.detail,
            retry_at=retry_at.isoformat(),
        )


def _deliverable_details(connection: Connection, delivery: Delivery) -> dict[str, object] | None:
    ledger = Ledger(connection)
    row = ledger.referral(delivery.referral_id)
    if row is None or row.status is ReferralStatus.CANCELLED:
        return None
    return ledger.details(delivery.referral_id)


def _delivered(connection: Connection, delivery: Delivery, now: datetime) -> None:
    WebhookQueue(connection).delivered(delivery.event_id, now)
    Ledger(connection).audit(
        actor=f"service:{SERVICE}",
        action="delivered-details",
        referral_id=delivery.referral_id,
        detail={"organisation": delivery.organisation_id, "channel": "webhook"},
    )


async def _dead_letter(delivery: Delivery, error: str) -> None:
    dead = DeadLetter(
        reason="undeliverable",
        detail=f"webhook to {delivery.organisation_id} failed for "
        f"{settings.webhook_max_age_seconds:.0f}s ({delivery.attempts + 1} attempts): {error}",
        service=SERVICE,
        original_topic=topics.social_referrals(delivery.organisation_id),
        original_partition=-1,  # queued from the database, not a consumed position
        original_offset=-1,
        original_key=str(delivery.referral_id),
        original_value=json.dumps(delivery.event),
        attempts=delivery.attempts + 1,
        failed_at=datetime.now(UTC),
    )
    event = CloudEvent[DeadLetter].wrap(dead, service=SERVICE)
    await dead_letters.publish(
        event.to_json_bytes(),
        key=str(delivery.referral_id).encode(),
        headers={"content-type": "application/cloudevents+json", "brug-reason": dead.reason},
    )
    DEAD_LETTERED.labels(service=SERVICE, reason=dead.reason).inc()
    log.warning("webhook parked", referral_id=str(delivery.referral_id), error=error)


def _secret(organisation: WelfareOrganisation) -> str:
    secret = os.environ.get(str(organisation.webhook_secret_env))
    if not secret:
        raise RuntimeError(f"{organisation.webhook_secret_env} is not set")
    return secret


_loop_task: asyncio.Task[None] | None = None


@app.after_startup
async def _start_delivering() -> None:
    global _loop_task
    for organisation in webhook_organisations.values():
        _secret(organisation)  # refuse to run with a webhook organisation we cannot sign for
    _loop_task = asyncio.create_task(deliver_forever())


@app.on_shutdown
async def _stop_delivering() -> None:
    if _loop_task is not None:
        _loop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await _loop_task
    await engine.dispose()
