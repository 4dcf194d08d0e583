"""The monitor as a real process, as its own Kafka principal, on a broker of its own that
authenticates and enforces the ACL plan (so the shared broker's backlog of other tests is
not in the way, and the rebuilt dataset can be compared with the whole live one), with a
ledger of its own: Brug's events in, one pseudonymous row per referral out; a redelivery
changes nothing; ``brug monitor rebuild`` gives the live dataset again and swaps it in while
the service runs; ``brug erase`` leaves the dataset as it was; ``brug monitor export`` and
``report`` read it."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from kafka import KafkaProducer
from typer.testing import CliRunner

from adapters.clients import load_clients
from adapters.database import make_engine
from adapters.kafka_acls import acl_plan, apply_acls
from adapters.ledger.repository import Ledger
from adapters.monitor.rebuild import differences, rebuild
from adapters.monitor.store import REBUILD, MonitorStore
from contracts.monitor import FIELDS, MonitorRecord
from deploy.cli import app as brug
from deploy.devstack.kafka import KafkaNode, dev_principal
from deploy.devstack.provision import create_topics
from deploy.devstack.stack import DEFAULT_CLIENTS, DEFAULT_DIRECTORY, DevStack, StackConfig
from services.monitor.settings import DEV_MONITOR_KEY
from tests.conftest import database_of_its_own, free_port
from tests.helpers import eventually
from tests.monitor_story import CLOUDEVENTS, MARKER, Record, Story, completed, told

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 9, 10, 0, tzinfo=UTC)
AS_MONITOR = dev_principal("brug-monitor")


@pytest.fixture(scope="module")
def broker(infrastructure_dir: Path) -> Iterator[KafkaNode]:
    node = KafkaNode(infrastructure_dir / "monitor-kafka", free_port(), free_port(), secured=True)
    node.start()
    try:
        create_topics(node.bootstrap_servers, DEFAULT_DIRECTORY, DEFAULT_CLIENTS, node.admin)
        apply_acls(node.bootstrap_servers, acl_plan(load_clients(DEFAULT_CLIENTS)), node.admin)
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def monitor_database(database_url: str) -> Iterator[str]:
    with database_of_its_own(database_url, "brug_monitor") as url:
        yield url


@pytest.fixture(scope="module")
def monitor(
    broker: KafkaNode, monitor_database: str, infrastructure_dir: Path
) -> Iterator[DevStack]:
    stack = DevStack(
        StackConfig(
            state_dir=infrastructure_dir / "monitor-test",
            external_kafka=broker.bootstrap_servers,
            kafka_dev_users=True,  # as brug-monitor, under the ACL plan
            external_database=monitor_database,
            metrics_ports={"monitor": free_port()},
        ),
        services=("monitor",),
        simulated_organisations=(),
    )
    stack.start_services()
    yield stack
    stack.stop_services()


def publish(broker: KafkaNode, records: list[Record]) -> None:
    """As Brug's relay and the case systems would (here as the super user)."""
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap_servers, acks="all", **broker.admin.kafka_python()
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


def told_and_applied(
    broker: KafkaNode, database_url: str, organisation: str, municipality: str
) -> list[tuple[Story, MonitorRecord]]:
    stories = told(organisation, municipality, START, DEV_MONITOR_KEY)
    publish(broker, [record for story, _ in stories for record in story.records])
    eventually(lambda: the_rows_of(database_url, stories), "the stories' rows", timeout=30)
    return stories


def test_brugs_events_become_one_row_per_referral_and_a_redelivery_changes_nothing(
    monitor: DevStack, broker: KafkaNode, monitor_database: str
) -> None:
    stories = told_and_applied(broker, monitor_database, "welzijn-lelystad", "GM0995")
    rows = the_rows_of(monitor_database, stories)

    repeats = counted(monitor, "repeat")
    sent = [record for story, _ in stories for record in story.records]
    publish(broker, sent)
    eventually(
        lambda: counted(monitor, "repeat") >= repeats + len(sent), "the repeats read", timeout=30
    )
    assert the_rows_of(monitor_database, stories) == rows


def test_a_rebuild_gives_the_live_dataset_and_swaps_it_in_while_the_service_runs(
    monitor: DevStack, broker: KafkaNode, monitor_database: str
) -> None:
    told_and_applied(broker, monitor_database, "dynamo-amsterdam", "GM0363")
    live = records(monitor_database)
    engine = make_engine(monitor_database)
    try:
        checked = rebuild(
            engine, broker.bootstrap_servers, DEV_MONITOR_KEY, credentials=AS_MONITOR, swap=False
        )
        with engine.connect() as connection:
            assert differences(connection) == []
            assert MonitorStore(connection, REBUILD).count() == checked.rows == len(live)
        assert not checked.swapped and checked.truncated == []

        swapped = rebuild(engine, broker.bootstrap_servers, DEV_MONITOR_KEY, credentials=AS_MONITOR)
        assert swapped.swapped and swapped.rows == len(live)
        assert records(monitor_database) == live
        with engine.connect() as connection:
            assert MonitorStore(connection, REBUILD).count() == 0
    finally:
        engine.dispose()

    # The service goes on with the swapped-in rows: what it had applied are repeats now,
    # and what is new is applied.
    later = told_and_applied(broker, monitor_database, "buurtwerk-dordrecht", "GM0505")
    assert set(records(monitor_database)) == set(live) | {e.pseudonym for _, e in later}


def test_the_dataset_survives_the_erasure_of_a_patient(
    monitor: DevStack, broker: KafkaNode, monitor_database: str
) -> None:
    story, expected, _ = completed("dynamo-amsterdam", "GM0363", START)
    expected = expected.model_copy(update={"pseudonym": story.pseudonym(DEV_MONITOR_KEY)})
    engine = make_engine(monitor_database)
    with engine.begin() as connection:
        Ledger(connection).add_referral(story.referral_id, "GM0363", START)
    engine.dispose()
    publish(broker, story.records)
    eventually(lambda: records(monitor_database).get(expected.pseudonym), "the row", timeout=30)

    erased = CliRunner().invoke(
        brug,
        [
            "erase",
            "--referral",
            str(story.referral_id),
            "--yes",
            "--database-url",
            monitor_database,
        ],
    )

    assert erased.exit_code == 0, erased.output
    assert records(monitor_database)[expected.pseudonym] == expected
    engine = make_engine(monitor_database)
    try:
        rebuild(engine, broker.bootstrap_servers, DEV_MONITOR_KEY, credentials=AS_MONITOR)
    finally:
        engine.dispose()
    assert records(monitor_database)[expected.pseudonym] == expected


def test_export_writes_the_rows_per_the_contract_and_report_suppresses_small_counts(
    monitor: DevStack, broker: KafkaNode, monitor_database: str, tmp_path: Path
) -> None:
    stories = told_and_applied(broker, monitor_database, "xtra-zoetermeer", "GM0637")
    runner = CliRunner()

    exported = runner.invoke(
        brug,
        [
            "monitor",
            "export",
            "--period",
            "2026-Q4",
            "--out",
            str(tmp_path),
            "--database-url",
            monitor_database,
        ],
    )

    assert exported.exit_code == 0, exported.output
    with (tmp_path / "referrals.csv").open(encoding="utf-8") as rows:
        table = list(csv.DictReader(rows))
    assert list(table[0]) == list(FIELDS)
    assert {row["pseudonym"] for row in table} == set(records(monitor_database))
    package = json.loads((tmp_path / "datapackage.json").read_text())
    assert package["period"] == "2026-Q4"
    assert [f["name"] for f in package["resources"][0]["schema"]["fields"]] == list(FIELDS)
    written = (tmp_path / "referrals.csv").read_text() + (tmp_path / "datapackage.json").read_text()
    assert MARKER not in written
    assert not any(str(story.referral_id) in written for story, _ in stories)

    reported = runner.invoke(
        brug,
        [
            "monitor",
            "report",
            "--municipality",
            "GM0637",
            "--period",
            "2026-Q4",
            "--database-url",
            monitor_database,
        ],
    )

    assert reported.exit_code == 0, reported.output
    report = json.loads(reported.output)
    assert report["scope"] == {"kind": "municipality", "code": "GM0637"}
    # Three referrals in Zoetermeer: below k = 5, so suppressed, as are the totals
    # that would give it away.
    assert report["counts"]["referrals"]["all"] is None
    assert report["median_days_to_first_contact"] is None
    refused = runner.invoke(
        brug, ["monitor", "report", "--municipality", "Zoetermeer", "--period", "2026-Q4"]
    )
    assert refused.exit_code == 2 and "GM and four digits" in refused.output
