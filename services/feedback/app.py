"""Feedback service: ``brug.social.status.<org>.v1`` → the ledger, the GP's Task and
Communications, and id-only change notices on ``brug.gp.changes.<client>.v1``.

The topic names the sender (Kafka ACLs let only that organisation write it); the event
must name the same organisation, and the referral must be assigned to it. A status the
state machine (``domain/status_machine.py``) does not allow is not applied: the sender gets a
problem event on ``brug.social.problems.<org>.v1`` saying why. Repeats are ignored.

A handler only commits; an outbox loop announces what changed (claimed from the ledger,
published, then recorded as announced in the same transaction), so a crash in between
announces again under the same deterministic event id, and a burst goes out in batches.
The service-level timers live in the ledger, so they survive restarts; a loop here raises
``brug.referrals.overdue.v1`` when one runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

import structlog
from faststream.kafka import KafkaMessage
from sqlalchemy import Connection

from adapters.database import make_async_engine
from adapters.directory import load_directory
from adapters.ledger.repository import Announcement, DueTimer, Ledger
from adapters.outbox import Outbox, cloudevent_message
from adapters.runtime import configure_logging, make_app, make_broker
from adapters.runtime.kafka import consumer_group
from adapters.runtime.metrics import observe_end_to_end
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.events import GpResourceChanged, ReferralOverdue
from contracts.events.referral import ServiceLevelTimer
from contracts.events.status import ReferralStatusProblem, ReferralStatusReported, SignalRaised
from domain.status_machine import Verdict
from services.feedback.apply import apply_signal, apply_status
from services.feedback.settings import FeedbackSettings

SERVICE = "feedback"
CLOUDEVENTS_JSON = {"content-type": "application/cloudevents+json"}
_EVENT_IDS = uuid.UUID("0b9b1f7c-3f47-4a43-8a5e-9d0e1f6d2c11")

settings = FeedbackSettings()
configure_logging(SERVICE, settings.log_level, settings.log_format)
log = structlog.get_logger(f"brug.{SERVICE}")
engine = make_async_engine(settings.database_url)
directory = load_directory(settings.directory_path)
broker = make_broker(settings, service=SERVICE)
app = make_app(
    broker,
    service=SERVICE,
    description="Applies welfare status events and signals to referrals under the state "
    "machine, tells GP systems what changed, and watches the service-level timers.",
)
problems = broker.publisher(
    "brug.social.problems.{organisation_id}.v1",
    title="brug.social.problems.{organisation_id}.v1",
    description="Why a status event or signal was not applied. Key: referral id.",
    schema=CloudEvent[ReferralStatusProblem],
)
gp_changes = broker.publisher(
    "brug.gp.changes.{client_id}.v1",
    title="brug.gp.changes.{client_id}.v1",
    description="Id-only: one of the GP system's Tasks or Communications changed. "
    "Key: referral id.",
    schema=CloudEvent[GpResourceChanged],
)
overdue = broker.publisher(
    topics.OVERDUE,
    title=topics.OVERDUE,
    description="A service-level timer ran out. Key: referral id.",
    schema=CloudEvent[ReferralOverdue],
)

FromCaseSystem = CloudEvent[ReferralStatusReported] | CloudEvent[SignalRaised]


async def handle_case_system_event(event: FromCaseSystem, message: KafkaMessage) -> None:
    record: Any = message.raw_message  # one ConsumerRecord: not a batch subscriber
    sender = record.topic.split(".")[3]
    verdict = await _apply(sender, event)
    if verdict.problem is not None:
        await _answer_problem(sender, event, verdict)
    if verdict.apply:
        changes_waiting.set()
        if isinstance(event.data, ReferralStatusReported):  # reported → the GP's Task moved
            observe_end_to_end(SERVICE, "status-applied", event.time)
    log.info(
        "event applied" if verdict.apply else "event not applied",
        referral_id=str(event.data.referral_id),
        event_type=event.type,
        problem=verdict.problem.value if verdict.problem else None,
    )


# One subscriber per organisation's status topic (from the directory; a new organisation
# needs a restart, as for the router), each with one consumer per partition: partitions are
# handled concurrently, each still in order, each committing only what it handled. (A
# pattern subscription cannot do that while committing per record.)
for _organisation in directory.organisations:
    handle_case_system_event = broker.subscriber(
        topics.social_status(_organisation.id),
        group_id=f"{consumer_group(SERVICE)}.{_organisation.id}",
        max_workers=settings.feedback_workers,
    )(handle_case_system_event)


async def _apply(sender: str, event: FromCaseSystem) -> Verdict:
    now = datetime.now(UTC)
    data = event.data
    async with engine.begin() as connection:
        if isinstance(data, SignalRaised):
            return await connection.run_sync(lambda c: apply_signal(Ledger(c), sender, data, now))
        return await connection.run_sync(lambda c: apply_status(Ledger(c), sender, data, now))


# -- the announcement outbox -------------------------------------------------------------
# The handler only commits; announcing what changed happens here, from the ledger, so a
# crash between the two loses nothing and a burst is announced in batches. Changes made by
# other services (the GP's withdrawal) are found by the poll.

changes_waiting = asyncio.Event()


async def announce_forever() -> None:
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changes_waiting.wait(), settings.announce_poll_seconds)
        changes_waiting.clear()
        try:
            while await announce_batch():
                pass
        except Exception:  # keep announcing; the rows stay unannounced until it works
            log.exception("announcing failed")
            await asyncio.sleep(1)


async def announce_batch() -> int:
    """Publish one batch of id-only notices (in order, confirmed together), then record them
    as announced in the same transaction that claimed them."""
    async with engine.begin() as connection:
        owed = await connection.run_sync(lambda c: Ledger(c).claim_announcements())
        confirmations = [await _publish_notice(item) for item in owed]
        await asyncio.gather(*confirmations)
        now = datetime.now(UTC)
        await connection.run_sync(lambda c: Ledger(c).mark_announced(owed, now))
    return len(owed)


async def _publish_notice(item: Announcement) -> Any:
    notice = GpResourceChanged(
        referral_id=item.referral_id,
        resource_type=item.resource_type,  # type: ignore[arg-type]
        resource_id=item.resource_id,
        version_id=item.version,
        task_id=item.task_id,
        changed_at=item.changed_at,
    )
    event_id = str(uuid.uuid5(_EVENT_IDS, f"{notice.reference()}/_history/{item.version}"))
    # Sent in order (one idempotent producer keeps the order per partition); confirmed
    # together by the caller.
    return await gp_changes.publish(
        CloudEvent[GpResourceChanged]
        .wrap(notice, service=SERVICE, event_id=event_id)
        .to_json_bytes(),
        topic=topics.gp_changes(item.client_id),
        key=str(item.referral_id).encode(),
        headers=CLOUDEVENTS_JSON,
        no_confirm=True,
    )


async def _answer_problem(sender: str, event: FromCaseSystem, verdict: Verdict) -> None:
    assert verdict.problem is not None
    problem = ReferralStatusProblem(
        referral_id=event.data.referral_id,
        organisation_id=sender,
        rejected_event_id=event.id,
        problem=verdict.problem,
        detail=verdict.detail,
    )
    await problems.publish(
        CloudEvent[ReferralStatusProblem].wrap(problem, service=SERVICE).to_json_bytes(),
        topic=topics.social_problems(sender),
        key=str(event.data.referral_id).encode(),
        headers=CLOUDEVENTS_JSON,
    )


# -- service-level timers ----------------------------------------------------------------


async def watch_timers_forever() -> None:
    while True:
        try:
            await raise_overdue_timers()
        except Exception:  # keep watching; the next round retries what failed
            log.exception("timer round failed")
        await asyncio.sleep(settings.timer_poll_seconds)


async def raise_overdue_timers() -> None:
    """Stamp the timer and queue ``ReferralOverdue`` in one transaction: it is raised once,
    and a Kafka outage only delays it."""
    now = datetime.now(UTC)
    async with engine.connect() as connection:
        timers = await connection.run_sync(lambda c: Ledger(c).due_timers(now))
    for timer in timers:
        async with engine.begin() as connection:
            raised = await connection.run_sync(_raise_overdue, timer, now)
        if raised:
            changes_waiting.set()  # the Task shows the missed service level: a new version
            log.warning(
                "service level missed", referral_id=str(timer.referral_id), timer=timer.timer
            )


def _raise_overdue(connection: Connection, timer: DueTimer, now: datetime) -> bool:
    if not Ledger(connection).mark_overdue(timer.referral_id, timer.timer, now):
        return False  # another replica stamped it first
    event = ReferralOverdue(
        referral_id=timer.referral_id,
        organisation_id=timer.organisation_id,
        timer=ServiceLevelTimer(timer.timer),
        due_at=timer.due_at,
        detected_at=now,
    )
    event_id = str(uuid.uuid5(_EVENT_IDS, f"overdue/{timer.referral_id}/{timer.timer}"))
    wrapped = CloudEvent[ReferralOverdue].wrap(event, service=SERVICE, event_id=event_id)
    Outbox(connection).add(
        cloudevent_message(wrapped, topics.OVERDUE, referral_id=timer.referral_id)
    )
    return True


_loops: list[asyncio.Task[None]] = []


@app.after_startup
async def _start_loops() -> None:
    _loops.extend(
        [asyncio.create_task(watch_timers_forever()), asyncio.create_task(announce_forever())]
    )


@app.on_shutdown
async def _stop_loops() -> None:
    for loop in _loops:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop


@app.after_shutdown
async def _close_database() -> None:
    await engine.dispose()
