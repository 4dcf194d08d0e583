"""The outbox and its relay in-process, against the real PostgreSQL and Kafka: what
commits is published, in order per key, once, and what rolls back never is."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from faststream.kafka import KafkaBroker
from sqlalchemy import event, make_url, select, text

from adapters.database import make_async_engine, make_engine
from adapters.kafka_admin import TopicSpec, ensure_topics
from adapters.kafka_security import KafkaCredentials
from adapters.ledger.tables import outbox
from adapters.outbox import Outbox, OutboxMessage
from adapters.outbox.relay import OutboxRelay, broker_sender
from adapters.outbox.store import NOTIFY_CHANNEL
from tests.helpers import collect_by_key, eventually, records_with_key

pytestmark = pytest.mark.integration


@pytest.fixture
async def broker(kafka_bootstrap: str) -> AsyncIterator[KafkaBroker]:
    broker = KafkaBroker(
        kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        security=KafkaCredentials().faststream(),
    )
    await broker.start()
    yield broker
    await broker.stop()


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    name = f"brug.test.outbox.{uuid.uuid4().hex[:8]}.v1"
    ensure_topics(kafka_bootstrap, [TopicSpec(name, partitions=3)])
    return name


@contextlib.asynccontextmanager
async def running(relay: OutboxRelay) -> AsyncIterator[None]:
    task = asyncio.create_task(relay.run_forever())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _message(topic: str, key: str, n: int) -> OutboxMessage:
    return OutboxMessage(topic=topic, key=key, value=f"{key}:{n}".encode(), event_type="test")


async def _write(database_url: str, messages: list[OutboxMessage], *, commit: bool) -> None:
    engine = make_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            transaction = await connection.begin()
            await connection.run_sync(lambda c: Outbox(c).add(*messages))
            await (transaction.commit() if commit else transaction.rollback())
    finally:
        await engine.dispose()


def _relay(database_url: str, broker: KafkaBroker, **options: Any) -> OutboxRelay:
    return OutboxRelay(
        engine=make_async_engine(database_url),
        send=broker_sender(broker),
        database_url=database_url,
        **options,
    )


async def _collect(bootstrap: str, topic: str, keys: set[str]) -> dict[str, list[str]]:
    found = await asyncio.to_thread(
        collect_by_key, bootstrap, topic, {key.encode() for key in keys}, 60.0, 1.0
    )
    return {key.decode(): [value.decode() for value in values] for key, values in found.items()}


async def test_committed_events_are_published_in_order_per_key_and_rolled_back_ones_never(
    own_database: str, kafka_bootstrap: str, broker: KafkaBroker, topic: str
) -> None:
    keys = [str(uuid.uuid4()) for _ in range(5)]
    committed = [_message(topic, key, n) for n in range(20) for key in keys]
    rolled_back = _message(topic, "never", 0)
    await _write(own_database, [rolled_back], commit=False)
    # Written before the relay runs: it must find them without a notification.
    await _write(own_database, committed[:50], commit=True)

    async with running(_relay(own_database, broker, batch_size=7)):
        await _write(own_database, committed[50:], commit=True)
        found = await _collect(kafka_bootstrap, topic, set(keys))

    assert found == {key: [f"{key}:{n}" for n in range(20)] for key in keys}
    never = await asyncio.to_thread(records_with_key, kafka_bootstrap, topic, b"never", 1.0)
    assert never == []


async def test_the_relay_wakes_on_notify_without_polling(
    own_database: str, kafka_bootstrap: str, broker: KafkaBroker, topic: str
) -> None:
    # An hour between polls: only the NOTIFY written with the row can wake it in time.
    relay = _relay(own_database, broker, poll_seconds=3600)
    async with running(relay):
        await asyncio.wait_for(_idle(relay), 30)
        key = str(uuid.uuid4())
        await _write(own_database, [_message(topic, key, 0)], commit=True)
        found = await _collect(kafka_bootstrap, topic, {key})
    assert found == {key: [f"{key}:0"]}


async def _idle(relay: OutboxRelay) -> None:
    """Until the relay has drained and waits for news."""
    # Polls the database: there is no event to wait on for "the outbox is empty".
    while relay._news.is_set() or await _pending(relay) > 0:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def _pending(relay: OutboxRelay) -> int:
    async with relay.engine.connect() as connection:
        query = text("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        return int((await connection.execute(query)).scalar_one())


async def test_two_relays_side_by_side_publish_each_event_once_and_in_order(
    own_database: str, kafka_bootstrap: str, broker: KafkaBroker, topic: str
) -> None:
    keys = [str(uuid.uuid4()) for _ in range(10)]
    messages = [_message(topic, key, n) for n in range(30) for key in keys]

    async with (
        running(_relay(own_database, broker, batch_size=5)),
        running(_relay(own_database, broker, batch_size=5)),
    ):
        for start in range(0, len(messages), 20):
            await _write(own_database, messages[start : start + 20], commit=True)
        found = await _collect(kafka_bootstrap, topic, set(keys))

    assert found == {key: [f"{key}:{n}" for n in range(30)] for key in keys}


async def test_an_event_kafka_refuses_while_taking_others_is_parked_and_holds_nothing_up(
    own_database: str, kafka_bootstrap: str, broker: KafkaBroker, topic: str
) -> None:
    # A topic nobody created (the broker does not create topics on demand).
    nowhere = f"brug.test.missing.{uuid.uuid4().hex[:8]}.v1"
    stuck = _message(nowhere, "stuck", 0)
    keys = [str(uuid.uuid4()) for _ in range(3)]
    first = [_message(topic, key, n) for n in range(3) for key in keys]
    later = [_message(topic, key, n) for n in range(3, 6) for key in keys]
    await _write(own_database, [stuck, *first], commit=True)

    relay = _relay(
        own_database,
        broker,
        confirm_timeout_seconds=3,
        single_timeout_seconds=2,
        park_after=timedelta(seconds=1),
    )
    async with running(relay):
        found = await _collect(kafka_bootstrap, topic, set(keys))
        assert found == {key: [f"{key}:{n}" for n in range(3)] for key in keys}
        assert await _rows_to(own_database, nowhere) == [(None, None, None)], (
            "refused once, while a broker restart could still explain it: kept pending"
        )
        await _write(own_database, later, commit=True)  # Kafka takes these, refuses it again
        parked = await asyncio.to_thread(
            eventually,
            lambda: _parked_reasons(own_database, nowhere),
            "the refused event is parked",
            60,
        )
        found = await _collect(kafka_bootstrap, topic, set(keys))  # the round that parked it

    assert found == {key: [f"{key}:{n}" for n in range(6)] for key in keys}
    assert len(parked) == 1 and parked[0], "parked with the reason Kafka gave"
    assert await _pending_count(own_database) == 0, "nothing waits behind it"


async def _pending_count(database_url: str) -> int:
    def count() -> int:
        engine = make_engine(database_url)
        try:
            with engine.connect() as connection:
                return Outbox(connection).pending_count()
        finally:
            engine.dispose()

    return await asyncio.to_thread(count)


async def _rows_to(database_url: str, topic: str) -> list[tuple[object, object, object]]:
    return await asyncio.to_thread(_rows, database_url, topic)


def _rows(database_url: str, topic: str) -> list[tuple[object, object, object]]:
    """(published_at, parked_at, parked_reason) of every outbox row for ``topic``."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(outbox.c.published_at, outbox.c.parked_at, outbox.c.parked_reason)
                .where(outbox.c.topic == topic)
                .order_by(outbox.c.id)
            )
            return [tuple(row) for row in rows]
    finally:
        engine.dispose()


def _parked_reasons(database_url: str, topic: str) -> list[object]:
    return [reason for _, parked_at, reason in _rows(database_url, topic) if parked_at]


def test_each_transaction_wakes_the_relay_once_however_many_rows_it_adds(
    own_database: str, topic: str
) -> None:
    """One NOTIFY per transaction, not per ``add``; a later transaction on the same pooled
    connection sends its own."""
    dsn = make_url(own_database).set(drivername="postgresql").render_as_string(False)
    engine = make_engine(own_database)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        with psycopg.connect(dsn, autocommit=True) as listener:
            listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
            with engine.connect() as connection:
                for round_ in range(2):
                    with connection.begin():
                        for n in range(3):
                            Outbox(connection).add(_message(topic, f"once-{round_}", n))
            woken = list(listener.notifies(timeout=5, stop_after=2))
    finally:
        engine.dispose()
    assert len(woken) == 2, "one wake-up per committed transaction"
    assert sum(s.startswith("NOTIFY") for s in statements) == 2
