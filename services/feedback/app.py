"""Feedback service: ``brug.social.status.<org>.v1`` → the ledger, the GP's Task and
Communications, and id-only change notices on ``brug.gp.changes.<client>.v1``.

The topic names the sender (Kafka ACLs let only that organisation write it); the event
must name the same organisation, and the referral must be assigned to it. A status the
state machine (``contracts/feedback.py``) does not allow is not applied: the sender gets a
problem event on ``brug.social.problems.<org>.v1`` saying why. Repeats are ignored.

Changes are committed first, then announced, then the announcement is recorded; a
redelivered event announces what a crash left unannounced (consumers deduplicate on the
deterministic event id). The service-level timers live in the ledger, so they survive
restarts; a loop here raises ``brug.referrals.overdue.v1`` when one runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from faststream.kafka import KafkaMessage
from sqlalchemy import Connection

from adapters.database import make_async_engine
from adapters.ledger.repository import CommunicationRow, DueTimer, Ledger, ReferralRow
from adapters.runtime import configure_logging, make_app, make_broker
from adapters.runtime.kafka import consumer_group
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.events import GpResourceChanged, ReferralOverdue
from contracts.events.referral import ServiceLevelTimer
from contracts.events.status import ReferralStatusProblem, ReferralStatusReported, SignalRaised
from contracts.feedback import Verdict
from services.feedback.apply import apply_signal, apply_status
from services.feedback.settings import FeedbackSettings

SERVICE = "feedback"
STATUS_PATTERN = r"brug\.social\.status\.[a-z0-9][a-z0-9-]*\.v1"
CLOUDEVENTS_JSON = {"content-type": "application/cloudevents+json"}
_EVENT_IDS = uuid.UUID("0b9b1f7c-3f47-4a43-8a5e-9d0e1f6d2c11")

settings = FeedbackSettings()
configure_logging(SERVICE, settings.log_level, settings.log_format)
log = structlog.get_logger(f"brug.{SERVICE}")
engine = make_async_engine(settings.database_url)
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


@broker.subscriber(pattern=STATUS_PATTERN, group_id=consumer_group(SERVICE))
async def handle_case_system_event(event: FromCaseSystem, message: KafkaMessage) -> None:
    record: Any = message.raw_message  # one ConsumerRecord: not a batch subscriber
    sender = record.topic.split(".")[3]
    verdict, pending = await _apply(sender, event)
    if verdict.problem is not None:
        await _answer_problem(sender, event, verdict)
    await announce(pending)
    log.info(
        "event applied" if verdict.apply else "event not applied",
        referral_id=str(event.data.referral_id),
        event_type=event.type,
        problem=verdict.problem.value if verdict.problem else None,
    )


@dataclass(frozen=True)
class Pending:
    """What the GP system has not been told yet: the Task's version, new Communications."""

    row: ReferralRow | None
    communications: list[CommunicationRow]


async def _apply(sender: str, event: FromCaseSystem) -> tuple[Verdict, Pending]:
    """Apply the event and read what is unannounced, in one transaction."""
    now = datetime.now(UTC)
    data = event.data

    def apply(connection: Connection) -> tuple[Verdict, Pending]:
        ledger = Ledger(connection)
        if isinstance(data, SignalRaised):
            verdict = apply_signal(ledger, sender, data, now)
        else:
            verdict = apply_status(ledger, sender, data, now)
        return verdict, _pending(ledger, data.referral_id)

    async with engine.begin() as connection:
        return await connection.run_sync(apply)


def _pending(ledger: Ledger, referral_id: uuid.UUID) -> Pending:
    row = ledger.referral(referral_id)
    return Pending(row, ledger.unpublished_communications(referral_id) if row else [])


async def publish_changes(referral_id: uuid.UUID) -> None:
    """Announce what is unannounced for one referral (the timer loop's path)."""
    async with engine.connect() as connection:
        pending = await connection.run_sync(lambda c: _pending(Ledger(c), referral_id))
    await announce(pending)


async def announce(pending: Pending) -> None:
    """Publish id-only notices for the Task's newest version and new Communications, then
    record that they went out."""
    row, communications = pending.row, pending.communications
    if row is None or row.client_id is None or row.task_id is None:
        return
    referral_id = row.referral_id
    notices = []
    if row.version > row.changes_published_version:
        notices.append(("Task", row.task_id, row.version))
    for communication in communications:
        notices.append(("Communication", communication.communication_id, 1))
        if communication.action_task_id is not None:
            notices.append(("Task", communication.action_task_id, 1))
    for resource_type, resource_id, version in notices:
        notice = GpResourceChanged(
            referral_id=referral_id,
            resource_type=resource_type,  # type: ignore[arg-type]
            resource_id=resource_id,
            version_id=version,
            task_id=row.task_id,
            changed_at=row.updated_at or datetime.now(UTC),
        )
        event_id = str(uuid.uuid5(_EVENT_IDS, f"{notice.reference()}/_history/{version}"))
        await gp_changes.publish(
            CloudEvent[GpResourceChanged]
            .wrap(notice, service=SERVICE, event_id=event_id)
            .to_json_bytes(),
            topic=topics.gp_changes(row.client_id),
            key=str(referral_id).encode(),
            headers=CLOUDEVENTS_JSON,
        )
    if not notices:
        return
    now = datetime.now(UTC)
    async with engine.begin() as connection:
        await connection.run_sync(
            lambda c: _mark_announced(Ledger(c), referral_id, row.version, communications, now)
        )


def _mark_announced(
    ledger: Ledger, referral_id: uuid.UUID, version: int, communications: list[Any], at: datetime
) -> None:
    ledger.mark_changes_published(referral_id, version, at)
    for communication in communications:
        ledger.mark_communication_published(communication.communication_id, at)


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
    """Publish, then stamp: a crash in between republishes under the same event id."""
    now = datetime.now(UTC)
    async with engine.connect() as connection:
        timers = await connection.run_sync(lambda c: Ledger(c).due_timers(now))
    for timer in timers:
        await _publish_overdue(timer, now)
        async with engine.begin() as connection:
            await connection.run_sync(_stamp_overdue, timer, now)
        await publish_changes(timer.referral_id)
        log.warning("service level missed", referral_id=str(timer.referral_id), timer=timer.timer)


def _stamp_overdue(connection: Connection, timer: DueTimer, now: datetime) -> None:
    Ledger(connection).mark_overdue(timer.referral_id, timer.timer, now)


async def _publish_overdue(timer: DueTimer, now: datetime) -> None:
    event = ReferralOverdue(
        referral_id=timer.referral_id,
        organisation_id=timer.organisation_id,
        timer=ServiceLevelTimer(timer.timer),
        due_at=timer.due_at,
        detected_at=now,
    )
    event_id = str(uuid.uuid5(_EVENT_IDS, f"overdue/{timer.referral_id}/{timer.timer}"))
    await overdue.publish(
        CloudEvent[ReferralOverdue].wrap(event, service=SERVICE, event_id=event_id).to_json_bytes(),
        topic=topics.OVERDUE,
        key=str(timer.referral_id).encode(),
        headers=CLOUDEVENTS_JSON,
    )


_timer_task: asyncio.Task[None] | None = None


@app.after_startup
async def _start_timers() -> None:
    global _timer_task
    _timer_task = asyncio.create_task(watch_timers_forever())


@app.on_shutdown
async def _stop_timers() -> None:
    if _timer_task is not None:
        _timer_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await _timer_task


@app.after_shutdown
async def _close_database() -> None:
    await engine.dispose()
