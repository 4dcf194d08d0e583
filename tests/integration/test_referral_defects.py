"""Three defects the domain-core issue found, each shown fixed in-process against the real
PostgreSQL (and Kafka where the defect was about publishing):

- a receipt was lost when Kafka was down at the moment the GP read;
- a withdrawal raced a status report, and the organisation could be told "withdrawn" about
  a referral whose Task then showed the report's status;
- a signal was dropped when its id had been used before on another referral.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from faststream.kafka import KafkaBroker
from sqlalchemy import Engine, select

from adapters.clients import Client, ClientKind
from adapters.database import make_async_engine, make_engine
from adapters.fhir.outcomes import FhirProblem
from adapters.kafka_security import KafkaCredentials
from adapters.ledger.repository import Ledger
from adapters.ledger.tables import communications, outbox
from adapters.outbox.relay import OutboxRelay, broker_sender
from contracts import topics
from contracts.codes import ReferralStatus
from contracts.events import ReferralWithdrawn
from contracts.events.status import ReferralStatusReported, SignalKind, SignalRaised, WelfareStatus
from domain.referral import Referral
from services.feedback.apply import apply_signal, apply_status
from services.fhir_gateway.reads import Seen, _audit_and_receipts
from services.fhir_gateway.withdrawal import _cancel
from tests.helpers import wait_for_record
from tests.ledger_rows import accepted_referral

pytestmark = pytest.mark.integration

ORGANISATION = "dynamo-amsterdam"
AGB = "01999001"
GP = Client(
    client_id="his-amsterdam-centrum",
    kind=ClientKind.GP,
    organisation=AGB,
    name="test GP system",
    token_sha256="0" * 64,
)


@pytest.fixture(scope="module")
def engine(own_database: str) -> Iterator[Engine]:
    engine = make_engine(own_database)
    yield engine
    engine.dispose()


def report(referral_id: uuid.UUID, status: WelfareStatus) -> ReferralStatusReported:
    return ReferralStatusReported(
        referral_id=referral_id,
        organisation_id=ORGANISATION,
        status=status,
        sequence=2,
        occurred_at=datetime.now(UTC),
    )


async def test_a_receipt_for_a_read_while_kafka_is_down_arrives_when_it_is_back(
    engine: Engine, own_database: str, kafka_topics: str
) -> None:
    row = accepted_referral(engine)
    assert row.task_id is not None
    with engine.begin() as connection:  # the GP reads; nothing can reach Kafka now
        _audit_and_receipts(
            connection, [Seen(row.referral_id, "Task", row.task_id, row.version)], GP, "read-task"
        )
    with engine.connect() as connection:
        waiting = (
            connection.execute(
                select(outbox.c.event_type).where(
                    (outbox.c.referral_id == row.referral_id) & outbox.c.published_at.is_(None)
                )
            )
            .scalars()
            .all()
        )
    # (The accepted status before it also queued the GP system's change notice.)
    assert waiting.count("nl.brug.feedback.received-by-gp.v1") == 1, "kept, not logged and lost"

    broker = KafkaBroker(
        kafka_topics,
        acks="all",
        enable_idempotence=True,
        security=KafkaCredentials().faststream(),
    )
    await broker.start()
    relay = OutboxRelay(make_async_engine(own_database), broker_sender(broker), own_database)
    task = asyncio.create_task(relay.run_forever())  # Kafka is back
    try:
        record = await asyncio.to_thread(
            wait_for_record,
            kafka_topics,
            topics.social_referrals(ORGANISATION),
            lambda r: r.key == str(row.referral_id).encode(),
        )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await broker.stop()
    assert b"received-by-gp" in record.value


def test_a_withdrawal_racing_a_status_report_always_agrees_with_what_the_organisation_was_told(
    engine: Engine,
) -> None:
    outcomes = {"withdrawn": 0, "report first": 0}
    for _ in range(200):
        row = accepted_referral(engine)
        assert row.task_id is not None
        start = threading.Barrier(2)

        def withdraw(task_id: uuid.UUID = row.task_id, start: threading.Barrier = start) -> None:
            start.wait()
            with contextlib.suppress(FhirProblem), engine.begin() as connection:
                _cancel(connection, task_id, GP)  # 422 when the report ended it first

        def report_unreachable(
            referral_id: uuid.UUID = row.referral_id, start: threading.Barrier = start
        ) -> None:
            start.wait()
            with engine.begin() as connection:
                unreachable = report(referral_id, WelfareStatus.UNREACHABLE)
                apply_status(Ledger(connection), ORGANISATION, unreachable, datetime.now(UTC))

        threads = [threading.Thread(target=withdraw), threading.Thread(target=report_unreachable)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

        with engine.connect() as connection:
            final = Ledger(connection).referral(row.referral_id)
            told_withdrawn = connection.execute(
                select(outbox.c.id).where(
                    (outbox.c.referral_id == row.referral_id)
                    & (outbox.c.event_type == ReferralWithdrawn.EVENT_TYPE)
                )
            ).all()
        assert final is not None
        withdrawn = Referral.of(final).withdrawn  # exactly when the details answer 410
        assert withdrawn == bool(told_withdrawn), (final.status, len(told_withdrawn))
        assert final.status in {ReferralStatus.CANCELLED, ReferralStatus.FAILED}
        assert len(told_withdrawn) <= 1
        outcomes["withdrawn" if withdrawn else "report first"] += 1
    assert sum(outcomes.values()) == 200


def test_the_same_signal_id_on_two_referrals_reaches_both_gps(engine: Engine) -> None:
    first, second = accepted_referral(engine), accepted_referral(engine)
    signal_id = uuid.uuid4()  # chosen by the sender: nothing stops two referrals sharing it
    for row in (first, second):
        signal = SignalRaised(
            referral_id=row.referral_id,
            organisation_id=ORGANISATION,
            signal_id=signal_id,
            kind=SignalKind.HEALTH_CONCERN,
            text="Mevrouw lijkt vergeetachtiger dan bij de intake.",
            occurred_at=datetime.now(UTC),
        )
        with engine.begin() as connection:
            verdict = apply_signal(Ledger(connection), ORGANISATION, signal, datetime.now(UTC))
        assert verdict.apply, verdict.detail
        with engine.begin() as connection:  # a repeat on the same referral stays harmless
            again = apply_signal(Ledger(connection), ORGANISATION, signal, datetime.now(UTC))
        assert not again.apply and again.problem is None

    with engine.connect() as connection:
        stored = (
            connection.execute(
                select(communications.c.referral_id).where(communications.c.signal_id == signal_id)
            )
            .scalars()
            .all()
        )
    assert sorted(map(str, stored)) == sorted([str(first.referral_id), str(second.referral_id)])
