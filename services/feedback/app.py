"""Feedback service: ``brug.social.status.<org>.v1`` → the ledger and the GP's Task.

The topic names the sender (Kafka ACLs let only that organisation write it); the event
must name the same organisation, and the referral must be assigned to it. A status the
state machine (``contracts/feedback.py``) does not allow is not applied: the sender gets a
problem event on ``brug.social.problems.<org>.v1`` saying why. Repeats are ignored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from faststream.kafka import KafkaMessage
from sqlalchemy import Connection

from adapters.database import make_async_engine
from adapters.ledger.repository import Ledger
from adapters.runtime import configure_logging, make_app, make_broker
from adapters.runtime.kafka import consumer_group
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.events.status import (
    DeclineReason,
    ReferralStatusProblem,
    ReferralStatusReported,
    StatusProblemCode,
    WelfareStatus,
)
from contracts.feedback import TASK_VIEW, Verdict, judge
from services.feedback.settings import FeedbackSettings

SERVICE = "feedback"
STATUS_PATTERN = r"brug\.social\.status\.[a-z0-9][a-z0-9-]*\.v1"

settings = FeedbackSettings()
configure_logging(SERVICE, settings.log_level, settings.log_format)
log = structlog.get_logger(f"brug.{SERVICE}")
engine = make_async_engine(settings.database_url)
broker = make_broker(settings, service=SERVICE)
app = make_app(
    broker,
    service=SERVICE,
    description="Applies welfare status events to referrals under the state machine.",
)
problems = broker.publisher(
    "brug.social.problems.{organisation_id}.v1",
    title="brug.social.problems.{organisation_id}.v1",
    description="Why a status event was not applied. Key: referral id.",
    schema=CloudEvent[ReferralStatusProblem],
)


@app.after_shutdown
async def _close_database() -> None:
    await engine.dispose()


@broker.subscriber(pattern=STATUS_PATTERN, group_id=consumer_group(SERVICE))
async def handle_status(event: CloudEvent[ReferralStatusReported], message: KafkaMessage) -> None:
    record: Any = message.raw_message  # one ConsumerRecord: not a batch subscriber
    sender = record.topic.split(".")[3]
    reported = event.data
    async with engine.begin() as connection:
        verdict = await connection.run_sync(_apply, sender, reported)
    if verdict.problem is not None:
        await _answer_problem(sender, event, verdict)
    log.info(
        "status applied" if verdict.apply else "status not applied",
        referral_id=str(reported.referral_id),
        status=reported.status.value,
        problem=verdict.problem.value if verdict.problem else None,
    )


def _apply(connection: Connection, sender: str, reported: ReferralStatusReported) -> Verdict:
    ledger = Ledger(connection)
    row = ledger.referral(reported.referral_id)
    if row is None:
        return Verdict(False, StatusProblemCode.UNKNOWN_REFERRAL, "no such referral")
    if sender != reported.organisation_id or row.organisation_id != sender:
        return Verdict(
            False,
            StatusProblemCode.FOREIGN_ORGANISATION,
            "this referral is not assigned to the organisation that sent the status",
        )
    current = WelfareStatus(row.welfare_status) if row.welfare_status else None
    verdict = judge(current, row.status_sequence, reported.status, reported.sequence)
    if verdict.apply:
        task_status, business_status = TASK_VIEW[reported.status]
        ledger.record_welfare_status(
            reported.referral_id,
            welfare_status=reported.status.value,
            sequence=reported.sequence,
            task_status=task_status,
            business_status=business_status,
            reason=_reason(reported),
            source=f"welfare:{sender}",
            at=datetime.now(UTC),
        )
    return verdict


def _reason(reported: ReferralStatusReported) -> str | None:
    """What the GP reads in Task.statusReason when a referral is declined."""
    if reported.status is not WelfareStatus.DECLINED or reported.decline_reason is None:
        return None
    readable = {
        DeclineReason.NO_CAPACITY: "the welfare organisation has no capacity",
        DeclineReason.OUTSIDE_TARGET_GROUP: "outside the organisation's target group",
        DeclineReason.PATIENT_DECLINED: "the patient declined",
        DeclineReason.OTHER: reported.decline_text or "other",
    }
    return f"Declined: {readable[reported.decline_reason]}"


async def _answer_problem(
    sender: str, event: CloudEvent[ReferralStatusReported], verdict: Verdict
) -> None:
    assert verdict.problem is not None
    problem = ReferralStatusProblem(
        referral_id=event.data.referral_id,
        organisation_id=sender,
        rejected_event_id=event.id,
        problem=verdict.problem,
        detail=verdict.detail,
    )
    answer = CloudEvent[ReferralStatusProblem].wrap(problem, service=SERVICE)
    await problems.publish(
        answer.to_json_bytes(),
        topic=topics.social_problems(sender),
        key=str(event.data.referral_id).encode(),
        headers={"content-type": "application/cloudevents+json"},
    )
