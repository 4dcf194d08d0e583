"""The delivery side of webhook delivery: a loop claims due deliveries, POSTs the minimised
referral (event + details) signed by Standard Webhooks, and records the outcome. Failures back
off exponentially and are parked after ``webhook_max_age_seconds`` (24 h by default) with
a dead letter, so operators see what never arrived.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import structlog
from faststream.kafka.publisher.usecase import DefaultPublisher
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.ledger.repository import Ledger
from adapters.ledger.webhooks import Delivery, WebhookQueue
from adapters.runtime.metrics import DEAD_LETTERED, WEBHOOK_ATTEMPTS
from adapters.runtime.tracing import span
from adapters.webhooks import post_signed, secret_key
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.directory import WelfareOrganisation
from contracts.events import DeadLetter
from domain.access import may_read_details
from services.webhook_delivery import SERVICE
from services.webhook_delivery.schedule import next_attempt, should_park
from services.webhook_delivery.settings import WebhookSettings

log = structlog.get_logger(f"brug.{SERVICE}")
# A rotated-out secret, still signed with: <webhook_secret_env>_PREVIOUS.
PREVIOUS_SUFFIX = "_PREVIOUS"


@dataclass(frozen=True)
class WebhookDelivery:
    """The delivery loop and what it needs, wired by the composition root."""

    engine: AsyncEngine
    organisations: Mapping[str, WelfareOrganisation]
    settings: WebhookSettings
    dead_letters: DefaultPublisher

    async def deliver_forever(self) -> None:
        async with httpx.AsyncClient(timeout=self.settings.webhook_timeout_seconds) as http:
            while True:
                try:
                    await self.deliver_due(http)
                except Exception:
                    log.exception("delivery round failed; trying again")
                await asyncio.sleep(self.settings.webhook_poll_seconds)

    async def deliver_due(self, http: httpx.AsyncClient) -> None:
        """One round: each due delivery is claimed, attempted and recorded in one
        transaction, so two replicas never send the same delivery and a crash leaves it
        pending."""
        async with self.engine.begin() as connection:
            due = await connection.run_sync(lambda c: WebhookQueue(c).claim_due(datetime.now(UTC)))
            for delivery in due:
                # Continues the referral's trace, carried in the queued event.
                with span(
                    "webhook delivery",
                    traceparent=delivery.event.get("traceparent"),
                    referral_id=delivery.referral_id,
                    event_id=delivery.event_id,
                ):
                    await self._attempt(connection, http, delivery)

    async def _attempt(
        self, connection: AsyncConnection, http: httpx.AsyncClient, delivery: Delivery
    ) -> None:
        run = connection.run_sync
        organisation = self.organisations.get(delivery.organisation_id)
        now = datetime.now(UTC)
        grace = timedelta(seconds=self.settings.details_grace_after_end_seconds)
        details = await run(_deliverable_details, delivery, now, grace)
        if organisation is None or details is None:
            reason = (
                "organisation no longer uses webhooks"
                if organisation is None
                else "withdrawn, ended or erased"
            )
            await run(lambda c: WebhookQueue(c).park(delivery.event_id, reason, now))
            return
        body = json.dumps({"event": delivery.event, "details": details}).encode()
        attempt = await post_signed(
            http,
            str(organisation.webhook_url),
            signing_secrets(organisation),
            body,
            delivery.event_id,
            allow_loopback_http=organisation.allow_loopback_http,
        )
        if attempt.ok:
            WEBHOOK_ATTEMPTS.labels(service=SERVICE, outcome="delivered").inc()
            await run(_delivered, delivery, now)
            log.info(
                "webhook delivered",
                referral_id=str(delivery.referral_id),
                attempts=delivery.attempts + 1,
            )
        elif should_park(now, delivery.created_at, self.settings.webhook_max_age_seconds):
            WEBHOOK_ATTEMPTS.labels(service=SERVICE, outcome="parked").inc()
            await run(lambda c: WebhookQueue(c).park(delivery.event_id, attempt.detail, now))
            await self._dead_letter(delivery, attempt.detail)
        else:
            WEBHOOK_ATTEMPTS.labels(service=SERVICE, outcome="retry").inc()
            retry_at = next_attempt(
                now,
                delivery.attempts + 1,
                self.settings.webhook_backoff_base_seconds,
                self.settings.webhook_backoff_max_seconds,
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

    async def _dead_letter(self, delivery: Delivery, error: str) -> None:
        dead = DeadLetter(
            reason="undeliverable",
            detail=f"webhook to {delivery.organisation_id} failed for "
            f"{self.settings.webhook_max_age_seconds:.0f}s ({delivery.attempts + 1} attempts): "
            f"{error}",
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
        await self.dead_letters.publish(
            event.to_json_bytes(),
            key=str(delivery.referral_id).encode(),
            headers={"content-type": "application/cloudevents+json", "brug-reason": dead.reason},
        )
        DEAD_LETTERED.labels(service=SERVICE, reason=dead.reason).inc()
        log.warning("webhook parked", referral_id=str(delivery.referral_id), error=error)


def _deliverable_details(
    connection: Connection, delivery: Delivery, now: datetime, grace: timedelta
) -> dict[str, object] | None:
    """The details to push, or None when the organisation may no longer read them (the
    same rule as the details endpoint, ``domain.access``): checked at every attempt, so a
    delivery requeued by a dead letter's replay is checked again."""
    ledger = Ledger(connection)
    row = ledger.referral(delivery.referral_id)
    if row is None:
        return None
    # Nothing changes an ended referral's row, so its last change is when it ended.
    if not may_read_details(row.status, ended_at=row.updated_at, now=now, grace=grace):
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


def signing_secrets(organisation: WelfareOrganisation) -> list[str]:
    """The organisation's signing secrets, current first: the ``whsec_`` secret in the
    environment variable the directory names and, during a rotation, the one it replaces in
    the same name + ``_PREVIOUS``. Each delivery is signed with both until that is unset."""
    name = str(organisation.webhook_secret_env)
    current = os.environ.get(name)
    if not current:
        raise RuntimeError(f"{name} is not set")
    found = [(name, current)]
    if previous := os.environ.get(f"{name}{PREVIOUS_SUFFIX}"):
        found.append((f"{name}{PREVIOUS_SUFFIX}", previous))
    for variable, value in found:
        try:
            secret_key(value)
        except ValueError as problem:
            raise RuntimeError(f"{variable} {problem}") from None
    return [value for _, value in found]


def require_secrets(organisations: Iterable[WelfareOrganisation]) -> None:
    """Refuse to run with a webhook organisation we cannot sign for."""
    for organisation in organisations:
        signing_secrets(organisation)
