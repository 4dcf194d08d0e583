"""The feedback service in-process: its handler on FastStream's in-memory broker and its
timer round, both as ``services/feedback/app.py`` wires them, against the real PostgreSQL.

A status from the assigned organisation moves the GP's Task, and a completion leaves the
feedback Communication; a status arriving on another organisation's topic is refused with
a problem event to that sender; an overdue timer is raised once, however many rounds see
it; a signal id is the sender's own per referral.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker
from sqlalchemy import Engine, select, update

from adapters.ledger.repository import Ledger
from adapters.ledger.tables import communications, referrals
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.codes import ReferralStatus
from contracts.events import GpResourceChanged, ReferralOverdue
from contracts.events.status import (
    CompletionOutcome,
    ReferralStatusProblem,
    ReferralStatusReported,
    SignalKind,
    SignalRaised,
    StatusProblemCode,
    WelfareStatus,
)
from services.feedback.app import Feedback, wire
from services.feedback.apply import feedback_communication_id
from services.feedback.settings import FeedbackSettings
from tests.ledger_rows import accepted_referral
from tests.unit.handlers.support import CLOUDEVENTS, outbox_rows, referral

pytestmark = pytest.mark.integration  # the real PostgreSQL

ORGANISATION = "dynamo-amsterdam"
OTHER_ORGANISATION = "welzijn-lelystad"


@pytest.fixture
async def feedback(handler_database: str) -> AsyncIterator[Feedback]:
    service = wire(FeedbackSettings(database_url=handler_database))
    yield service
    await service.engine.dispose()


def _status(
    referral_id: uuid.UUID, status: WelfareStatus, sequence: int, **fields: Any
) -> CloudEvent[ReferralStatusReported]:
    return CloudEvent[ReferralStatusReported].wrap(
        ReferralStatusReported(
            referral_id=referral_id,
            organisation_id=ORGANISATION,
            status=status,
            sequence=sequence,
            occurred_at=datetime.now(UTC),
            **fields,
        ),
        service="case-system-test",
    )


async def _send(broker: KafkaBroker, sender: str, event: CloudEvent[Any]) -> None:
    """As the case system of ``sender`` produces it: on its own status topic."""
    await broker.publish(
        event.to_json_bytes(),
        topic=topics.social_status(sender),
        key=event.subject.encode() if event.subject else None,
        headers=CLOUDEVENTS,
    )


async def test_the_assigned_organisations_status_moves_the_task_and_completion_leaves_feedback(
    feedback: Feedback, ledger_engine: Engine
) -> None:
    row = accepted_referral(ledger_engine)
    outcome = CompletionOutcome(summary="Joined the walking group on Tuesdays.")
    async with TestKafkaBroker(feedback.broker) as broker:
        await _send(broker, ORGANISATION, _status(row.referral_id, WelfareStatus.IN_PROGRESS, 2))
        in_progress = referral(ledger_engine, row.referral_id)
        await _send(
            broker,
            ORGANISATION,
            _status(row.referral_id, WelfareStatus.COMPLETED, 3, outcome=outcome),
        )
    assert (in_progress.status, in_progress.welfare_status) == (
        ReferralStatus.IN_PROGRESS,
        "in-progress",
    )
    completed = referral(ledger_engine, row.referral_id)
    assert completed.status is ReferralStatus.COMPLETED
    assert (completed.status_sequence, completed.business_status) == (3, "completed-with-outcome")
    assert completed.version > in_progress.version > row.version, "each change a new version"
    with ledger_engine.connect() as connection:
        stored = connection.execute(
            select(communications).where(communications.c.referral_id == row.referral_id)
        ).all()
    assert [(c.communication_id, c.category, c.sender) for c in stored] == [
        (feedback_communication_id(row.referral_id), "feedback", ORGANISATION)
    ]
    assert stored[0].payload["summary"] == outcome.summary


async def test_a_status_on_another_organisations_topic_is_refused_with_a_problem_to_that_sender(
    feedback: Feedback, ledger_engine: Engine
) -> None:
    row = accepted_referral(ledger_engine)
    problems: list[CloudEvent[ReferralStatusProblem]] = []

    # Registered before the in-memory broker starts: what the sender's consumer would read.
    @feedback.broker.subscriber(topics.social_problems(OTHER_ORGANISATION))
    async def sender_reads(event: CloudEvent[ReferralStatusProblem]) -> None:
        problems.append(event)

    # The event names the assigned organisation, but the topic (Kafka's ACLs) says who sent it.
    spoofed = _status(row.referral_id, WelfareStatus.IN_PROGRESS, 2)
    async with TestKafkaBroker(feedback.broker) as broker:
        await _send(broker, OTHER_ORGANISATION, spoofed)
        sender_reads.mock.assert_called_once()

    [problem] = problems
    assert problem.data.problem is StatusProblemCode.FOREIGN_ORGANISATION
    assert (problem.data.referral_id, problem.data.organisation_id) == (
        row.referral_id,
        OTHER_ORGANISATION,
    )
    assert problem.data.rejected_event_id == spoofed.id
    unchanged = referral(ledger_engine, row.referral_id)
    assert (unchanged.status, unchanged.status_sequence, unchanged.version) == (
        ReferralStatus.ACCEPTED,
        1,
        row.version,
    )


async def test_an_overdue_timer_is_written_to_the_outbox_once_however_many_rounds_see_it(
    feedback: Feedback, ledger_engine: Engine
) -> None:
    row = accepted_referral(ledger_engine)
    past = datetime.now(UTC) - timedelta(hours=1)
    with ledger_engine.begin() as connection:
        Ledger(connection).set_due_dates(row.referral_id, past, past)
        # What the relay stamps when the organisation's ReferralCreated went out: a timer
        # runs only for a referral the organisation was told about.
        connection.execute(
            update(referrals)
            .where(referrals.c.referral_id == row.referral_id)
            .values(routed_event_published_at=past)
        )

    already = len(outbox_rows(ledger_engine, row.referral_id))
    # Two replicas' rounds at once, then another round later.
    await asyncio.gather(
        feedback.timers.raise_overdue_timers(), feedback.timers.raise_overdue_timers()
    )
    await feedback.timers.raise_overdue_timers()

    notice, overdue = outbox_rows(ledger_engine, row.referral_id)[already:]
    assert overdue.event_type == ReferralOverdue.EVENT_TYPE
    assert overdue.topic == topics.OVERDUE
    event = CloudEvent[ReferralOverdue].model_validate_json(overdue.value)
    assert (event.data.timer.value, event.data.organisation_id) == ("first-contact", ORGANISATION)
    marked = referral(ledger_engine, row.referral_id)
    assert marked.contact_overdue_at is not None
    assert marked.version == row.version + 1, "the Task shows the missed service level once"
    # The GP system hears of that version, in the same transaction.
    changed = CloudEvent[GpResourceChanged].model_validate_json(notice.value).data
    assert notice.topic == topics.gp_changes(str(row.client_id))
    assert (changed.resource_type, changed.version_id) == ("Task", marked.version)


async def test_one_signal_id_on_two_referrals_is_stored_for_each(
    feedback: Feedback, ledger_engine: Engine
) -> None:
    first, second = accepted_referral(ledger_engine), accepted_referral(ledger_engine)
    signal_id = uuid.uuid4()
    async with TestKafkaBroker(feedback.broker) as broker:
        for row in (first, second):
            signal = SignalRaised(
                referral_id=row.referral_id,
                organisation_id=ORGANISATION,
                signal_id=signal_id,
                kind=SignalKind.QUESTION,
                text="Could the GP call the patient about the new medication?",
                occurred_at=datetime.now(UTC),
            )
            await _send(
                broker, ORGANISATION, CloudEvent[SignalRaised].wrap(signal, service="case-test")
            )

    with ledger_engine.connect() as connection:
        stored = connection.execute(
            select(communications.c.referral_id).where(communications.c.signal_id == signal_id)
        ).scalars()
        assert sorted(stored) == sorted([first.referral_id, second.referral_id])
