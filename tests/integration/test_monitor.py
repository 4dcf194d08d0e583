"""The monitor as a real process against the real broker and a ledger of its own: Brug's
events in, one pseudonymous row per referral out; a redelivery changes nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from kafka import KafkaProducer

from adapters.database import make_engine
from adapters.kafka_security import KafkaCredentials
from adapters.monitor.store import MonitorStore
from contracts.monitor import MonitorRecord
from deploy.devstack.stack import DevStack, StackConfig
from services.monitor.settings import DEV_MONITOR_KEY
from tests.conftest import database_of_its_own, free_port
from tests.helpers import eventually
from tests.monitor_story import CLOUDEVENTS, Record, Story, told

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 9, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def monitor_database(database_url: str) -> Iterator[str]:
    with database_of_its_own(database_url, "brug_monitor") as url:
        yield url


@pytest.fixture(scope="module")
def monitor(
    kafka_topics: str, monitor_database: str, infrastructure_dir: Path
) -> Iterator[DevStack]:
    stack = DevStack(
        StackConfig(
            state_dir=infrastructure_dir / "monitor-test",
            external_kafka=kafka_topics,
            external_database=monitor_database,
            metrics_ports={"monitor": free_port()},
        ),
        services=("monitor",),
        simulated_organisations=(),
    )
    stack.start_services()
    yield stack
    stack.stop_services()


def publish(bootstrap: str, records: list[Record]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", **KafkaCredentials().kafka_python()
    )
    try:
        for topic, event in records:
            producer.send(
                topic,
                value=event.to_json_bytes(),
                key=str(event.data.referral_id).encode(),
                headers=[(k, v.encode()) for k, v in CLOUDEVENTS.items()],
            )
        producer.flush(timeout=15)
    finally:
        producer.close()


def records(database_url: str) -> dict[str, MonitorRecord]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return {r.pseudonym: r for r in MonitorStore(connection).records()}
    finally:
        engine.dispose()


def counted(stack: DevStack, outcome: str) -> float:
    text = httpx.get(stack.metrics_url("monitor"), timeout=5).text
    found = re.search(rf'^brug_monitor_events_total{{outcome="{outcome}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def the_rows_of(
    database_url: str, stories: list[tuple[Story, MonitorRecord]]
) -> dict[str, MonitorRecord] | None:
    found = records(database_url)
    wanted = {expected.pseudonym: expected for _, expected in stories}
    rows = {pseudonym: found.get(pseudonym) for pseudonym in wanted}
    return rows if rows == wanted else None


def test_brugs_events_become_one_row_per_referral_and_a_redelivery_changes_nothing(
    monitor: DevStack, kafka_topics: str, monitor_database: str
) -> None:
    stories = told("welzijn-lelystad", "GM0995", START, DEV_MONITOR_KEY)
    sent = [record for story, _ in stories for record in story.records]

    publish(kafka_topics, sent)
    rows = eventually(
        lambda: the_rows_of(monitor_database, stories), "the stories' rows", timeout=60
    )

    repeats = counted(monitor, "repeat")
    publish(kafka_topics, sent)
    eventually(
        lambda: counted(monitor, "repeat") >= repeats + len(sent), "the repeats read", timeout=30
    )
    assert the_rows_of(monitor_database, stories) == rows
