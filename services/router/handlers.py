"""The router's Kafka handler: ``brug.referrals.submitted.v1`` → an assignment and its
``ReferralCreated`` in the outbox, for ``brug.social.referrals.<org>.v1``.

The assignment and the organisation's ``ReferralCreated`` are committed together (the
event goes to the outbox; the relay publishes it). A redelivered record finds the referral
assigned and is skipped, so after a crash nothing is lost and an organisation never sees
two different events for a referral. An event for a referral the ledger never held is
dropped at once (counted, logged): the partition behind it never waits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import structlog
from faststream.kafka import KafkaRouter
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.directory import WatchedDirectory
from adapters.ledger.repository import Ledger, ReferralRow
from adapters.outbox import Outbox, cloudevent_message
from adapters.runtime import Unprocessable
from adapters.runtime.kafka import NEW_GROUP_STARTS_AT, consumer_group, service_router
from adapters.runtime.metrics import ORPHANS_DROPPED, observe_end_to_end
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.codes import ReferralStatus
from contracts.events import ReferralCreated, ReferralSubmitted
from domain.referral import Referral, Refusal
from services.router import SERVICE
from services.router.routing import route
from services.router.service_levels import due_dates

log = structlog.get_logger(f"brug.{SERVICE}")

Outcome = Literal["assigned", "already-assigned", "ended", "unknown"]


@dataclass(frozen=True)
class Routing:
    """What the handler needs, wired by the composition root."""

    engine: AsyncEngine
    directory: WatchedDirectory
    details_base_url: str


def submitted_router(routing: Routing, *, workers: int) -> KafkaRouter:
    """The subscriber on ``brug.referrals.submitted.v1``, and the publisher declared for
    the AsyncAPI document, bound to ``routing``."""
    router = service_router()
    # Declared for the AsyncAPI document: what routing emits (the relay publishes it from
    # the outbox, on the topic of the organisation chosen per referral).
    router.publisher(
        "brug.social.referrals.{organisation_id}.v1",
        title="brug.social.referrals.{organisation_id}.v1",
        description="The referral event one welfare organisation receives. Key: referral id.",
        schema=CloudEvent[ReferralCreated],
    )

    # One consumer per partition (in one group): partitions are routed concurrently, each
    # still in order, and each commits only what it handled.
    @router.subscriber(
        topics.REFERRALS_SUBMITTED,
        group_id=consumer_group(SERVICE),
        auto_offset_reset=NEW_GROUP_STARTS_AT,
        max_workers=workers,
    )
    async def handle_submitted(event: CloudEvent[ReferralSubmitted]) -> None:
        await route_submitted(routing, event)

    return router


async def route_submitted(routing: Routing, event: CloudEvent[ReferralSubmitted]) -> None:
    submitted = event.data
    now = datetime.now(UTC)
    try:
        created = route(
            submitted,
            routing.directory.current(),
            details_base_url=routing.details_base_url,
            now=now,
        )
    except Unprocessable as unroutable:
        async with routing.engine.begin() as connection:
            await connection.run_sync(_hold, submitted.referral_id, unroutable.detail, now)
        raise
    async with routing.engine.begin() as connection:
        outcome = await connection.run_sync(_assign, routing.directory, created, event, now)
    if outcome == "unknown":
        # The intake writes its event in the transaction that stores the referral, so an
        # event for a referral the ledger never held was not Brug's: drop it, don't park it.
        ORPHANS_DROPPED.labels(service=SERVICE, type=event.type).inc()
        log.warning("event for a referral the ledger never held dropped", event_id=event.id)
        return
    if outcome != "assigned":
        log.info("referral not routed again", referral_id=str(submitted.referral_id), why=outcome)
        return
    observe_end_to_end(SERVICE, "routed", submitted.submitted_at)
    log.info(
        "referral routed",
        referral_id=str(created.referral_id),
        organisation_id=created.organisation_id,
        municipality_code=created.municipality_code,
        event_id=created_event_id(created),
    )


def _assign(
    connection: Connection,
    directory: WatchedDirectory,
    created: ReferralCreated,
    submitted: CloudEvent[ReferralSubmitted],
    now: datetime,
) -> Outcome:
    """The assignment and its event, in one transaction under the referral's row lock: a
    case system that fetches the details as soon as the event arrives finds the referral
    assigned to it; a referral is announced once (the first assignment stands), and never
    after the GP withdrew it."""
    ledger = Ledger(connection)
    row = ledger.referral_for_update(created.referral_id)
    if row is None:
        return "unknown"
    if disagreement := _disagreement_with_ledger(row, submitted.data):
        # The intake writes the row and its event from one Intake, so a genuine event always
        # agrees: this one was forged (or altered), and must not steer a patient elsewhere.
        raise Unprocessable("refused", f"{disagreement} differs from the ledger's referral")
    organisation = directory.current().organisation(created.organisation_id)
    received_due, contact_due = (
        due_dates(now, organisation.service_levels) if organisation else (None, None)
    )
    assigned = Referral.of(row).assign(
        created.organisation_id, received_due_at=received_due, contact_due_at=contact_due
    )
    if isinstance(assigned, Refusal):
        return "ended"
    if not assigned:
        return "already-assigned"
    ledger.assign(created.referral_id, created.organisation_id, at=now)
    if row.status is ReferralStatus.ON_HOLD:
        # Unroutable before, replayed by an operator after a fix: the GP sees it move on.
        ledger.change_status(created.referral_id, ReferralStatus.REQUESTED, source=SERVICE, at=now)
    if received_due and contact_due:
        ledger.set_due_dates(created.referral_id, received_due, contact_due)
    ledger.audit(
        actor=f"service:{SERVICE}",
        action="routed",
        referral_id=created.referral_id,
        detail={
            "organisation_id": created.organisation_id,
            "directory": directory.current().version,
        },
    )
    outgoing = CloudEvent[ReferralCreated].wrap(
        created,
        service=SERVICE,
        traceparent=submitted.traceparent,
        event_id=created_event_id(created),
    )
    Outbox(connection).add(
        cloudevent_message(
            outgoing,
            topics.social_referrals(created.organisation_id),
            referral_id=created.referral_id,
            headers={"ce-causationid": submitted.id},
        )
    )
    return "assigned"


def _disagreement_with_ledger(row: ReferralRow, submitted: ReferralSubmitted) -> str | None:
    """The first routing input in which the event differs from what the intake stored
    (inputs the ledger does not hold, as in rows older than the column, are not compared)."""
    stored = {
        "municipality_code": row.municipality_code,
        "themes": list(row.themes),
        "age_band": row.age_band,
        "urgency": row.urgency,
    }
    claimed = {
        "municipality_code": submitted.municipality_code,
        "themes": [str(theme) for theme in submitted.themes],
        "age_band": str(submitted.age_band),
        "urgency": str(submitted.urgency),
    }
    return next((name for name, value in stored.items() if value and value != claimed[name]), None)


def created_event_id(created: ReferralCreated) -> str:
    # Deterministic: should the relay publish it twice, consumers see the same event id.
    return str(uuid.uuid5(created.referral_id, ReferralCreated.EVENT_TYPE))


def _hold(connection: Connection, referral_id: uuid.UUID, reason: str, now: datetime) -> None:
    """Unroutable: the GP's Task goes on hold with a reason it can read (unless the
    referral was assigned meanwhile, or has ended: then the hold would undo news)."""
    ledger = Ledger(connection)
    row = ledger.referral_for_update(referral_id)
    held = Referral.of(row).hold(reason) if row is not None else ()
    if isinstance(held, Refusal) or not held:
        return
    ledger.change_status(
        referral_id,
        ReferralStatus.ON_HOLD,
        source=SERVICE,
        at=now,
        reason=f"Brug could not route this referral: {reason}. An operator has been alerted.",
    )
