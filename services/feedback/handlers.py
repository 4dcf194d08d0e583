"""The feedback handler: ``brug.social.status.<org>.v1`` → the ledger (the GP's Task and
Communications), or a problem event on ``brug.social.problems.<org>.v1``.

The topic names the sender (Kafka ACLs let only that organisation write it); the event
must name the same organisation, and the referral must be assigned to it. What the state
machine (``domain/status_machine.py``) does not allow is not applied: the sender is told
why. Repeats are ignored. The handler only commits: the ledger queues the GP system's change
notice with the change, and the relay publishes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from faststream.kafka import KafkaBroker, KafkaMessage, KafkaRouter
from faststream.kafka.publisher import DefaultPublisher
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.ledger.repository import Ledger
from adapters.runtime.kafka import NEW_GROUP_STARTS_AT, consumer_group, service_router
from adapters.runtime.metrics import observe_end_to_end
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.events.gp import GpResourceChanged
from contracts.events.status import ReferralStatusProblem, ReferralStatusReported, SignalRaised
from domain.status_machine import Verdict
from services.feedback import CLOUDEVENTS_JSON, SERVICE
from services.feedback.apply import apply_signal, apply_status

log = structlog.get_logger(f"brug.{SERVICE}")

FromCaseSystem = CloudEvent[ReferralStatusReported] | CloudEvent[SignalRaised]


@dataclass(frozen=True)
class CaseSystems:
    """What the handler needs, wired by the composition root."""

    engine: AsyncEngine


def declare_gp_changes(broker: KafkaBroker) -> None:
    """Declared for the AsyncAPI document: the changes this service makes are announced
    there (the ledger queues each notice with its change; the relay publishes it)."""
    broker.publisher(
        "brug.gp.changes.{client_id}.v1",
        title="brug.gp.changes.{client_id}.v1",
        description="Id-only: one of the GP system's Tasks or Communications changed. "
        "Key: referral id.",
        schema=CloudEvent[GpResourceChanged],
    )


def case_system_router(
    case_systems: CaseSystems, organisation_ids: Iterable[str], *, workers: int
) -> KafkaRouter:
    """One subscriber per organisation's status topic, and the problems publisher."""
    router = service_router()
    problems = router.publisher(
        "brug.social.problems.{organisation_id}.v1",
        title="brug.social.problems.{organisation_id}.v1",
        description="Why a status event or signal was not applied. Key: referral id.",
        schema=CloudEvent[ReferralStatusProblem],
    )

    async def handle_case_system_event(event: FromCaseSystem, message: KafkaMessage) -> None:
        record: Any = message.raw_message  # one ConsumerRecord: not a batch subscriber
        await handle(case_systems, problems, record.topic.split(".")[3], event)

    # One subscriber per organisation (from the directory; a new organisation needs a
    # restart, as for the router), each with one consumer per partition: partitions are
    # handled concurrently, each still in order, each committing only what it handled. (A
    # pattern subscription cannot do that while committing per record.)
    for organisation_id in organisation_ids:
        router.subscriber(
            topics.social_status(organisation_id),
            group_id=f"{consumer_group(SERVICE)}.{organisation_id}",
            auto_offset_reset=NEW_GROUP_STARTS_AT,
            max_workers=workers,
        )(handle_case_system_event)
    return router


async def handle(
    case_systems: CaseSystems, problems: DefaultPublisher, sender: str, event: FromCaseSystem
) -> None:
    verdict = await _apply(case_systems.engine, sender, event)
    if verdict.problem is not None:
        await _answer_problem(problems, sender, event, verdict)
    if verdict.apply and isinstance(event.data, ReferralStatusReported):  # the Task moved
        observe_end_to_end(SERVICE, "status-applied", event.time)
    log.info(
        "event applied" if verdict.apply else "event not applied",
        referral_id=str(event.data.referral_id),
        event_type=event.type,
        problem=verdict.problem.value if verdict.problem else None,
    )


async def _apply(engine: AsyncEngine, sender: str, event: FromCaseSystem) -> Verdict:
    now = datetime.now(UTC)
    data = event.data
    async with engine.begin() as connection:
        if isinstance(data, SignalRaised):
            return await connection.run_sync(lambda c: apply_signal(Ledger(c), sender, data, now))
        return await connection.run_sync(lambda c: apply_status(Ledger(c), sender, data, now))


async def _answer_problem(
    problems: DefaultPublisher, sender: str, event: FromCaseSystem, verdict: Verdict
) -> None:
    assert verdict.problem is not None
    problem = ReferralStatusProblem(
        referral_id=event.data.referral_id,
        organisation_id=sender,
        rejected_event_id=event.id,
        problem=verdict.problem,
        detail=verdict.detail,
    )
    # Directly, not through the outbox: it answers the record in hand; should the publish
    # fail, the record is redelivered and answered again.
    await problems.publish(
        CloudEvent[ReferralStatusProblem].wrap(problem, service=SERVICE).to_json_bytes(),
        topic=topics.social_problems(sender),
        key=str(event.data.referral_id).encode(),
        headers=CLOUDEVENTS_JSON,
    )
