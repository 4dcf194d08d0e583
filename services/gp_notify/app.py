"""GP notify service: FHIR Subscriptions (R4 Backport IG, ``rest-hook``, ``id-only``).

Kafka side: every ``GpResourceChanged`` on ``brug.gp.changes.<client>.v1`` is counted
for each ``active`` Subscription of that client's GP organisation and POSTed to its
endpoint as a notification Bundle naming the Task or Communication (no content: the GP
system reads it through the FHIR API). A record is finished, for every subscription,
before the next of its partition: one referral's notifications arrive in order (event
numbers, counted atomically per subscription, order them across referrals). An endpoint that
fails a few quick attempts puts its subscription in ``error`` (readable in ``$status``),
so one bad endpoint never blocks the partition. A 2xx is a receipt for the welfare
organisation (``FeedbackReceivedByGp``, channel ``push``) the first time.

Loop side (every ``BRUG_NOTIFY_POLL_SECONDS``): the handshake to ``requested``
subscriptions (2xx → ``active``, else ``error``) and heartbeats to ``active`` ones whose
heartbeat period passed without anything sent.

Logs carry ids and HTTP status codes only: never endpoints, headers or payloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import httpx
import structlog
from faststream.kafka import KafkaMessage
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.clients import ClientKind, load_clients
from adapters.database import make_async_engine
from adapters.fhir.subscriptions import NotificationEvent, NotificationType, notification_bundle
from adapters.ledger.repository import Ledger, Receipt
from adapters.ledger.subscriptions import SubscriptionRow, Subscriptions
from adapters.outbox import Outbox
from adapters.outbox.messages import receipt_message
from adapters.runtime import configure_logging, make_app, make_broker
from adapters.runtime.kafka import consumer_group
from adapters.runtime.metrics import NOTIFICATIONS
from adapters.runtime.tracing import trace_headers
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.events import FeedbackReceivedByGp
from contracts.events.gp import GpResourceChanged
from services.gp_notify.settings import NotifySettings

SERVICE = "gp-notify"
FHIR_JSON = "application/fhir+json"

settings = NotifySettings()
configure_logging(SERVICE, settings.log_level, settings.log_format)
log = structlog.get_logger(f"brug.{SERVICE}")
# httpx logs every request's URL at INFO: endpoints are the GP systems', not for our logs.
logging.getLogger("httpx").setLevel(logging.WARNING)
# Which GP organisation (AGB) a changes topic's client acts for.
gp_organisations = {
    c.client_id: c.organisation
    for c in load_clients(settings.clients_path).clients
    if c.kind is ClientKind.GP
}
engine = make_async_engine(settings.database_url)
broker = make_broker(settings, service=SERVICE)
app = make_app(
    broker,
    service=SERVICE,
    description="Notifies GP systems' FHIR Subscriptions (rest-hook, id-only) of changes.",
)
receipts = broker.publisher(
    "brug.social.referrals.{organisation_id}.v1",
    title="brug.social.referrals.{organisation_id}.v1",
    description="The GP system's endpoint acknowledged a notification. Key: referral id.",
    schema=CloudEvent[FeedbackReceivedByGp],
)
_http = httpx.AsyncClient(timeout=settings.notify_timeout_seconds, follow_redirects=False)


async def notify_subscriptions(event: CloudEvent[GpResourceChanged], message: KafkaMessage) -> None:
    """Count, deliver to every subscription at once, then record outcomes and the receipt in
    one transaction: three round trips to the database whatever the number of subscriptions."""
    record: Any = message.raw_message  # one ConsumerRecord: not a batch subscriber
    client_id = record.topic.split(".")[3]
    organisation = gp_organisations.get(client_id)
    change = event.data
    if organisation is None:
        log.warning("change for an unknown GP client", client_id=client_id)
        return
    now = datetime.now(UTC)
    async with engine.begin() as connection:
        counted = await connection.run_sync(
            lambda c: Subscriptions(c).count_event(organisation, now)
        )
    if not counted:
        return
    focus = f"{settings.fhir_base_url.rstrip('/')}/{change.reference()}"
    failures = await asyncio.gather(*(_deliver(s, change, focus) for s in counted))
    async with engine.begin() as connection:
        receipt = await connection.run_sync(_record_outcomes, change, counted, failures, now)
    for subscription, failure in zip(counted, failures, strict=True):
        _log_outcome(
            "event-notification",
            subscription,
            failure,
            event_number=subscription.events_since_start,
            referral_id=str(change.referral_id),
        )
    if receipt is not None:
        log.info("receipt queued", referral_id=str(receipt.referral_id), channel="push")


# One subscriber per GP system's change topic (from the client registry), each with one
# consumer per partition: referrals on different partitions are notified concurrently, one
# referral's notifications stay in order. Event numbers say the order across referrals.
for _client_id in gp_organisations:
    notify_subscriptions = broker.subscriber(
        topics.gp_changes(_client_id),
        group_id=f"{consumer_group('gp_notify')}.{_client_id}",
        max_workers=settings.notify_workers,
    )(notify_subscriptions)


async def _deliver(
    subscription: SubscriptionRow, change: GpResourceChanged, focus: str
) -> str | None:
    number = subscription.events_since_start
    event = NotificationEvent(number=number, timestamp=change.changed_at, focus=focus)
    return await _post(
        subscription, _bundle(subscription, "active", "event-notification", number, event)
    )


def _record_outcomes(
    connection: Connection,
    change: GpResourceChanged,
    counted: list[SubscriptionRow],
    failures: list[str | None],
    now: datetime,
) -> Receipt | None:
    """Each subscription's outcome, the audit trail, and — if any endpoint took it — the
    receipt (first time only)."""
    store, ledger = Subscriptions(connection), Ledger(connection)
    for subscription, failure in zip(counted, failures, strict=True):
        if failure is not None:
            store.failed(subscription.subscription_id, failure)
            continue
        ledger.audit(
            actor=f"service:{SERVICE}",
            action="notified-gp",
            referral_id=change.referral_id,
            detail={
                "subscription_id": str(subscription.subscription_id),
                "resource": change.reference(),
                "version": change.version_id,
                "event_number": subscription.events_since_start,
            },
        )
    if all(failure is not None for failure in failures):
        return None
    receipt = ledger.record_gp_receipt(
        change.resource_type, change.resource_id, change.version_id, "push", now
    )
    if receipt is not None:  # in the outbox with the stamp: a Kafka outage cannot lose it
        Outbox(connection).add(receipt_message(receipt, "push", now, service=SERVICE))
    return receipt


def _bundle(
    subscription: SubscriptionRow,
    status: str,
    notification_type: NotificationType,
    events_since_start: int,
    event: NotificationEvent | None = None,
) -> dict[str, Any]:
    return notification_bundle(
        subscription_url=_subscription_url(subscription.subscription_id),
        topic=subscription.topic,
        status=status,
        notification_type=notification_type,
        events_since_start=events_since_start,
        event=event,
        at=datetime.now(UTC),
    )


def _subscription_url(subscription_id: UUID) -> str:
    return f"{settings.fhir_base_url.rstrip('/')}/Subscription/{subscription_id}"


async def _post(subscription: SubscriptionRow, body: dict[str, Any]) -> str | None:
    """POST a notification with a few quick attempts; None on a 2xx, else why not (ids and
    status codes only: the reason is shown to the GP system in ``$status``)."""
    headers = {}
    for header in subscription.headers:
        name, _, value = header.partition(":")
        headers[name.strip()] = value.strip()
    headers["Content-Type"] = FHIR_JSON
    headers.update(trace_headers())  # the GP system may continue the referral's trace
    content = json.dumps(body).encode()
    reason = "not attempted"
    for attempt in range(settings.notify_attempts):
        if attempt:
            await asyncio.sleep(settings.notify_retry_seconds * 2 ** (attempt - 1))
        try:
            response = await _http.post(subscription.endpoint, content=content, headers=headers)
        except httpx.HTTPError as error:
            reason = f"endpoint unreachable ({type(error).__name__})"
            continue
        if 200 <= response.status_code < 300:
            return None
        reason = f"endpoint answered HTTP {response.status_code}"
    return f"{reason} after {settings.notify_attempts} attempt(s)"


def _log_outcome(kind: str, subscription: SubscriptionRow, failure: str | None, **ids: Any) -> None:
    outcome = "delivered" if failure is None else "failed"
    NOTIFICATIONS.labels(service=SERVICE, kind=kind, outcome=outcome).inc()
    if failure is None:
        log.info(f"{kind} delivered", subscription_id=str(subscription.subscription_id), **ids)
    else:
        log.warning(
            f"{kind} failed; subscription in error",
            subscription_id=str(subscription.subscription_id),
            error=failure,
            **ids,
        )


# -- handshakes and heartbeats -------------------------------------------------------


async def poll_forever() -> None:
    while True:
        try:
            await handshakes()
            await heartbeats()
        except Exception:
            log.exception("notify round failed; trying again")
        await asyncio.sleep(settings.notify_poll_seconds)


async def handshakes() -> None:
    """Each requested subscription is claimed (row locked), greeted and settled in one
    transaction, so two replicas never both shake hands."""
    async with engine.begin() as connection:
        waiting = await connection.run_sync(lambda c: Subscriptions(c).claim_requested())
        for subscription in waiting:
            body = _bundle(subscription, "requested", "handshake", 0)
            failure = await _post(subscription, body)
            await _settle(connection, subscription, failure, activate=True)
            _log_outcome("handshake", subscription, failure)


async def heartbeats() -> None:
    now = datetime.now(UTC)
    async with engine.begin() as connection:
        due = await connection.run_sync(lambda c: Subscriptions(c).claim_heartbeats_due(now))
        for subscription in due:
            body = _bundle(subscription, "active", "heartbeat", subscription.events_since_start)
            failure = await _post(subscription, body)
            await _settle(connection, subscription, failure, activate=False)
            _log_outcome("heartbeat", subscription, failure)


async def _settle(
    connection: AsyncConnection,
    subscription: SubscriptionRow,
    failure: str | None,
    *,
    activate: bool,
) -> None:
    at = datetime.now(UTC)
    identifier = subscription.subscription_id
    if failure is None:
        await connection.run_sync(
            lambda c: Subscriptions(c).sent(identifier, at, activate=activate)
        )
    else:
        await connection.run_sync(lambda c: Subscriptions(c).failed(identifier, failure))


_loop_task: asyncio.Task[None] | None = None


@app.after_startup
async def _start_polling() -> None:
    global _loop_task
    _loop_task = asyncio.create_task(poll_forever())


@app.on_shutdown
async def _stop_polling() -> None:
    if _loop_task is not None:
        _loop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await _loop_task


@app.after_shutdown
async def _close() -> None:
    await _http.aclose()
    await engine.dispose()
