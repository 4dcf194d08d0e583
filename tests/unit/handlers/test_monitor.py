"""The monitor's handler in-process: FastStream's in-memory broker in front, the real
PostgreSQL behind. Referrals' lives (``tests/monitor_story.py``) go in as Brug puts them on
Kafka; out comes one pseudonymous row each, the same however often or in whichever order
the events arrive, with none of the free texts."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from faststream import FastStream
from faststream.kafka import KafkaBroker, TestKafkaBroker
from prometheus_client import REGISTRY
from sqlalchemy import Engine, select

from adapters.ledger.tables import monitor_referrals
from adapters.monitor.store import MonitorStore
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.events import SignalRaised
from contracts.monitor import MonitorRecord
from services.monitor.app import create_app
from services.monitor.settings import DEV_MONITOR_KEY, MonitorSettings
from tests.monitor_story import CLOUDEVENTS, MARKER, Record, Story, completed, told
from tests.unit.handlers.support import DeadLetters

pytestmark = pytest.mark.integration  # the real PostgreSQL

START = datetime(2026, 10, 5, 9, 30, tzinfo=UTC)
ORGANISATION, MUNICIPALITY = "dynamo-amsterdam", "GM0363"


@pytest.fixture
async def app(handler_database: str) -> AsyncIterator[FastStream]:
    app = create_app(MonitorSettings(database_url=handler_database))
    yield app
    await app.stop()


@pytest.fixture
def broker(app: FastStream) -> KafkaBroker:
    assert isinstance(app.broker, KafkaBroker)
    return app.broker


async def _deliver(broker: KafkaBroker, records: list[Record]) -> None:
    for topic, event in records:
        await broker.publish(
            event.to_json_bytes(),
            topic,
            key=str(event.data.referral_id).encode(),
            headers=CLOUDEVENTS,
        )


def _record(engine: Engine, story: Story) -> MonitorRecord | None:
    with engine.connect() as connection:
        records = MonitorStore(connection).records()
    pseudonym = story.pseudonym(DEV_MONITOR_KEY)
    return next((r for r in records if r.pseudonym == pseudonym), None)


def _row(engine: Engine, story: Story) -> Any:
    with engine.connect() as connection:
        return connection.execute(
            select(monitor_referrals).where(
                monitor_referrals.c.pseudonym == story.pseudonym(DEV_MONITOR_KEY)
            )
        ).one()


def _counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("brug_monitor_events_total", {"outcome": outcome}) or 0.0


async def test_each_referral_becomes_one_pseudonymous_row(
    broker: KafkaBroker, ledger_engine: Engine
) -> None:
    stories = told(ORGANISATION, MUNICIPALITY, START, DEV_MONITOR_KEY)
    dead_letters = DeadLetters(broker)

    async with TestKafkaBroker(broker) as br:
        for story, _ in stories:
            await _deliver(br, story.records)

    for story, expected in stories:
        assert _record(ledger_engine, story) == expected
    assert dead_letters.received == []


async def test_a_redelivered_or_replayed_event_changes_nothing(
    broker: KafkaBroker, ledger_engine: Engine
) -> None:
    story, _, _ = completed(ORGANISATION, MUNICIPALITY, START)
    repeats = _counted("repeat")

    async with TestKafkaBroker(broker) as br:
        await _deliver(br, story.records)
        once = _row(ledger_engine, story)
        await _deliver(br, story.records)

    assert _row(ledger_engine, story) == once
    assert len(once.seen_events) == len(story.records)
    assert _counted("repeat") == repeats + len(story.records)


async def test_the_row_is_the_same_in_whichever_order_the_topics_deliver(
    broker: KafkaBroker, ledger_engine: Engine
) -> None:
    """Each topic keeps its own order; across topics anything goes (a rebuild reads them
    one after another)."""
    stories = told(ORGANISATION, MUNICIPALITY, START, DEV_MONITOR_KEY)
    shuffled = random.Random(14)  # noqa: S311 (a reproducible shuffle)

    async with TestKafkaBroker(broker) as br:
        for story, _ in stories:
            by_topic: dict[str, list[Record]] = {}
            for record in story.records:
                by_topic.setdefault(record[0], []).append(record)
            lanes = list(by_topic.values())
            interleaved: list[Record] = []
            while lanes:
                lane = shuffled.choice(lanes)
                interleaved.append(lane.pop(0))
                lanes = [remaining for remaining in lanes if remaining]
            await _deliver(br, interleaved)

    for story, expected in stories:
        assert _record(ledger_engine, story) == expected


async def test_no_free_text_reaches_the_dataset(broker: KafkaBroker, ledger_engine: Engine) -> None:
    stories = told(ORGANISATION, MUNICIPALITY, START, DEV_MONITOR_KEY)

    async with TestKafkaBroker(broker) as br:
        for story, _ in stories:
            await _deliver(br, story.records)

    for story, _ in stories:
        stored = json.dumps(_row(ledger_engine, story)._asdict(), default=str)
        assert MARKER not in stored
        assert str(story.referral_id) not in stored, "a pseudonym, not the referral id"
        for _, event in story.records:
            assert event.id not in stored, "event ids lead back to the referral: digests only"


async def test_what_brug_does_not_send_that_way_is_skipped_not_parked(
    broker: KafkaBroker, ledger_engine: Engine
) -> None:
    story, _, _ = completed(ORGANISATION, MUNICIPALITY, START)
    submitted, created = story.records[0], story.records[1]
    signal = next(event for _, event in story.records if isinstance(event.data, SignalRaised))
    foreign = CloudEvent[SignalRaised].wrap(
        signal.data.model_copy(update={"organisation_id": "welzijn-lelystad"}), service="x"
    )
    dead_letters = DeadLetters(broker)
    ignored, unreadable = _counted("ignored"), _counted("unreadable")

    async with TestKafkaBroker(broker) as br:
        await _deliver(br, [submitted, created])
        before = _row(ledger_engine, story)
        await _deliver(
            br,
            [
                # A case system's status topic carries no referral events of Brug's...
                (topics.social_status(ORGANISATION), submitted[1]),
                # ...nor another organisation's signals about this referral...
                (topics.social_status("welzijn-lelystad"), foreign),
                # ...and an organisation's own topic no events about another's.
                (topics.social_status(ORGANISATION), foreign),
            ],
        )
        await br.publish(b"{not json", topics.social_status(ORGANISATION), key=story.key)
        await br.publish(b'{"type": 3}', topics.OVERDUE, key=story.key)

    assert _row(ledger_engine, story) == before
    assert _counted("ignored") == ignored + 3
    assert _counted("unreadable") == unreadable + 2
    assert dead_letters.received == []
