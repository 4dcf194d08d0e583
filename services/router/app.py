"""Router service: ``brug.referrals.submitted.v1`` → ``brug.social.referrals.<org>.v1``.

The assignment is committed first, then the event is published, then the publish is
recorded. A redelivered record finds the referral assigned: if the publish was recorded it
is skipped, otherwise published again under the same (deterministic) event id. So after a
crash nothing is lost, and an organisation never sees two different events for a referral.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import structlog
from sqlalchemy import Connection

from adapters.database import make_async_engine
from adapters.directory import WatchedDirectory
from adapters.ledger.repository import Assignment, Ledger
from adapters.runtime import Unprocessable, configure_logging, make_app, make_broker
from adapters.runtime.kafka import consumer_group
from adapters.runtime.metrics import observe_end_to_end
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.codes import ReferralStatus
from contracts.events import ReferralCreated, ReferralSubmitted
from services.router.routing import route
from services.router.service_levels import due_dates
from services.router.settings import RouterSettings

SERVICE = "router"
LEDGER_WAITS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)  # seconds, about 0.4 s in all

settings = RouterSettings()
configure_logging(SERVICE, settings.log_level, settings.log_format)
directory = WatchedDirectory(settings.directory_path)
engine = make_async_engine(settings.database_url)
broker = make_broker(settings, service=SERVICE)
app = make_app(
    broker,
    service=SERVICE,
    description="Assigns submitted referrals to the welfare organisation serving the "
    "patient's municipality and publishes them on that organisation's topic.",
)


@app.after_shutdown
async def _close_database() -> None:
    await engine.dispose()


log = structlog.get_logger(f"brug.{SERVICE}")

# Declared for the AsyncAPI document; the organisation's topic is chosen per message.
referral_for_organisation = broker.publisher(
    "brug.social.referrals.{organisation_id}.v1",
    title="brug.social.referrals.{organisation_id}.v1",
    description="The referral event one welfare organisation receives. Key: referral id.",
    schema=CloudEvent[ReferralCreated],
)


class ReferralNotInLedger(Exception):
    """Retried up to the handler limit, then dead-lettered: an event whose referral the
    ledger does not hold is never delivered to an organisation."""


# One consumer per partition (in one group): partitions are routed concurrently, each
# still in order, and each commits only what it handled.
@broker.subscriber(
    topics.REFERRALS_SUBMITTED,
    group_id=consumer_group(SERVICE),
    max_workers=settings.router_workers,
)
async def handle_submitted(event: CloudEvent[ReferralSubmitted]) -> None:
    submitted = event.data
    now = datetime.now(UTC)
    try:
        created = route(
            submitted, directory.current(), details_base_url=settings.details_base_url, now=now
        )
    except Unprocessable as unroutable:
        async with engine.begin() as connection:
            await connection.run_sync(_hold, submitted.referral_id, unroutable.detail, now)
        raise
    assignment = await _assign_when_known(created, now)
    if assignment.published:
        log.info("referral already routed", referral_id=str(submitted.referral_id))
        return
    if assignment.organisation_id != created.organisation_id:
        # Assigned before under an older directory: the first assignment stands.
        created = created.model_copy(update={"organisation_id": assignment.organisation_id})
    outgoing = CloudEvent[ReferralCreated].wrap(
        created,
        service=SERVICE,
        traceparent=event.traceparent,
        # Deterministic: should a publish be repeated, consumers see the same event id.
        event_id=str(uuid.uuid5(created.referral_id, ReferralCreated.EVENT_TYPE)),
    )
    await referral_for_organisation.publish(
        outgoing.to_json_bytes(),
        topic=topics.social_referrals(created.organisation_id),
        key=str(created.referral_id).encode(),
        headers={"content-type": "application/cloudevents+json", "ce-causationid": event.id},
    )
    observe_end_to_end(SERVICE, "routed", submitted.submitted_at)
    async with engine.begin() as connection:
        await connection.run_sync(
            lambda c: Ledger(c).mark_routed_event_published(created.referral_id, datetime.now(UTC))
        )
    log.info(
        "referral routed",
        referral_id=str(created.referral_id),
        organisation_id=created.organisation_id,
        municipality_code=created.municipality_code,
        event_id=outgoing.id,
    )


async def _assign_when_known(created: ReferralCreated, now: datetime) -> Assignment:
    """Commit the assignment before the event exists, so a case system that fetches the
    details at once finds the referral assigned to it.

    The gateway commits its ledger row before publishing, so an unknown referral is an
    orphan (e.g. an intake undone after a publish that timed out but still landed). A
    short wait first keeps a slow commit on a loaded database from being mistaken for one."""
    for pause in LEDGER_WAITS:
        async with engine.begin() as connection:
            assignment = await connection.run_sync(_assign, created, now)
        if assignment.outcome != "unknown":
            return assignment
        await asyncio.sleep(pause)
    raise ReferralNotInLedger(f"referral {created.referral_id} is not in the ledger")


def _assign(connection: Connection, created: ReferralCreated, now: datetime) -> Assignment:
    ledger = Ledger(connection)
    assignment = ledger.assign(created.referral_id, created.organisation_id, at=now)
    if assignment.held:
        # Unroutable before, replayed by an operator after a fix: the GP sees it move on.
        ledger.change_status(created.referral_id, ReferralStatus.REQUESTED, source=SERVICE, at=now)
    if assignment.outcome == "assigned":
        organisation = directory.current().organisation(created.organisation_id)
        if organisation is not None:
            ledger.set_due_dates(created.referral_id, *due_dates(now, organisation.service_levels))
        ledger.audit(
            actor=f"service:{SERVICE}",
            action="routed",
            referral_id=created.referral_id,
            detail={
                "organisation_id": created.organisation_id,
                "directory": directory.current().version,
            },
        )
    return assignment


def _hold(connection: Connection, referral_id: uuid.UUID, reason: str, now: datetime) -> None:
    """Unroutable: the GP's Task goes on hold with a reason it can read."""
    ledger = Ledger(connection)
    if ledger.referral(referral_id) is None:
        return
    ledger.change_status(
        referral_id,
        ReferralStatus.ON_HOLD,
        source=SERVICE,
        at=now,
        reason=f"Brug could not route this referral: {reason}. An operator has been alerted.",
    )
