"""Bulk replay of dead letters (``brug dlq replay --reason … --since … --until …``, the
console's "Replay many") against the real PostgreSQL and Kafka: the reason and the window
choose exactly the parked letters they name; a dry run changes nothing; run again, it
replays nothing; two runs at once replay each letter exactly once (what arrives on the
topics, read back with a consumer); a record Kafka refuses leaves its letter parked again,
with the error; a claim without an outcome is taken up only once stale, by its id."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import Engine, func, select, update

from adapters.database import make_engine
from adapters.kafka_admin import TopicSpec, ensure_topics
from adapters.kafka_security import KafkaCredentials
from adapters.ledger.operations import DeadLetterRow, Operations
from adapters.ledger.tables import audit_log, dead_letters
from adapters.sealing import DEV_DEAD_LETTER_KEYS, Sealer, is_sealed
from contracts.events.deadletter import DeadLetter
from domain.dead_letters import REPLAYING, replay_window
from services.console.actions import (
    REPLAY_HEADER,
    ActionRefused,
    BulkReplay,
    Outcome,
    replay_dead_letter,
    replay_dead_letters,
)
from tests.conftest import database_of_its_own
from tests.helpers import wait_for_record

pytestmark = pytest.mark.integration

ACTOR = "cli:olga"
SEALER = Sealer.parse(DEV_DEAD_LETTER_KEYS)


@pytest.fixture(scope="module")
def database_url(database_url: str) -> Iterator[str]:
    """A ledger of its own: another test's dead letters must not fall in these windows."""
    with database_of_its_own(database_url, "brug_replay_test") as url:
        yield url


@pytest.fixture(scope="module")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    """A topic of the test's own: no service consumes what is replayed to it."""
    name = f"brug.test.replay.{uuid.uuid4().hex[:8]}.v1"
    ensure_topics(kafka_bootstrap, [TopicSpec(name, partitions=3)])
    return name


@pytest.fixture
def hour() -> datetime:
    """The start of an hour of the test's own, long ago: the windows below lie in it."""
    return datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=uuid.uuid4().int % 8000)


def _park(
    engine: Engine,
    topic: str,
    failed_at: datetime,
    *,
    reason: str = "unroutable",
    referral_id: uuid.UUID | None = None,
) -> str:
    """A parked dead letter; its key names it (or is the referral it is about)."""
    letter_id = str(uuid.uuid4())
    key = str(referral_id) if referral_id else f"letter-{letter_id}"
    letter = DeadLetter(
        reason=reason,  # type: ignore[arg-type]
        detail="parked by the test",
        service="router",
        original_topic=topic,
        original_partition=0,
        original_offset=1,
        original_key=key,
        original_value=json.dumps({"letter": letter_id}),
        original_headers={"ce_type": "nl.brug.test.v1"},
        attempts=1,
        failed_at=failed_at,
    )
    with engine.begin() as connection:
        assert Operations(connection).record_dead_letter(letter_id, letter, SEALER)
    return letter_id


def _letter(engine: Engine, letter_id: str) -> DeadLetterRow:
    with engine.connect() as connection:
        found = Operations(connection).dead_letter(letter_id)
    assert found is not None
    return found


def _states(engine: Engine) -> dict[str, tuple[Any, ...]]:
    with engine.connect() as connection:
        rows = connection.execute(select(dead_letters)).all()
    return {row.dead_letter_id: tuple(row) for row in rows}


def _audit_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(audit_log)).scalar_one()


def _arrived(bootstrap: str, topic: str, letter_ids: list[str]) -> dict[str, int]:
    """How often each letter's record is on ``topic``: everything up to its end offsets
    (a replay returns once every in-sync replica has its records)."""
    keys = {f"letter-{letter_id}".encode(): letter_id for letter_id in letter_ids}
    reader = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **KafkaCredentials().kafka_python()
    )
    try:
        partitions = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or ()]
        reader.assign(partitions)
        reader.seek_to_beginning(*partitions)
        ends = reader.end_offsets(partitions)
        counted: Counter[str] = Counter()
        deadline = time.monotonic() + 15
        while any(reader.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, f"{topic} not read to its end in 15 s"
            for records in reader.poll(timeout_ms=300).values():
                counted.update(keys[r.key] for r in records if r.key in keys)
        return dict(counted)
    finally:
        reader.close()


def _ids(result: BulkReplay, outcome: Outcome) -> set[str]:
    return {letter.dead_letter_id for letter in result.letters if letter.outcome is outcome}


def test_reason_and_window_choose_the_letters_a_dry_run_changes_nothing_a_rerun_replays_none(
    engine: Engine, kafka_bootstrap: str, topic: str, hour: datetime
) -> None:
    since, until = hour + timedelta(minutes=10), hour + timedelta(minutes=20)
    chosen = [
        _park(engine, topic, since),  # the window includes its start...
        _park(engine, topic, since + timedelta(minutes=5)),
        _park(engine, topic, until - timedelta(microseconds=1)),
    ]
    # ...and none of these:
    before = _park(engine, topic, since - timedelta(microseconds=1))
    at_the_end = _park(engine, topic, until)
    other_reason = _park(engine, topic, since + timedelta(minutes=1), reason="gave-up")
    discarded = _park(engine, topic, since + timedelta(minutes=2))
    with engine.begin() as connection:
        Operations(connection).resolve_dead_letter(
            discarded, "discarded", by="cli:pim", note="a duplicate", at=datetime.now(UTC)
        )
    unknown_referral = _park(  # in the window, but about a referral the ledger never held
        engine, topic, since + timedelta(minutes=3), referral_id=uuid.uuid4()
    )
    window = replay_window("unroutable", since, until, datetime.now(UTC))

    states, audits = _states(engine), _audit_count(engine)
    dry = replay_dead_letters(
        engine, kafka_bootstrap, window, sealer=SEALER, actor=ACTOR, note="", dry_run=True
    )
    assert _ids(dry, Outcome.WOULD_REPLAY) == set(chosen)
    assert _ids(dry, Outcome.REFUSED) == {unknown_referral}
    assert _states(engine) == states and _audit_count(engine) == audits, "nothing changed"
    assert dry.summary().startswith("dry run, nothing changed: 4 parked")

    with pytest.raises(ActionRefused, match="note is required"):
        replay_dead_letters(engine, kafka_bootstrap, window, sealer=SEALER, actor=ACTOR, note=" ")
    done = replay_dead_letters(
        engine, kafka_bootstrap, window, sealer=SEALER, actor=ACTOR, note="directory fixed"
    )
    assert _ids(done, Outcome.REPLAYED) == set(chosen)
    taken = [letter.dead_letter_id for letter in done.letters]
    assert [letter_id for letter_id in taken if letter_id != unknown_referral] == chosen
    refused = [letter for letter in done.letters if letter.outcome is Outcome.REFUSED]
    assert [(r.dead_letter_id, r.message) for r in refused] == [
        (unknown_referral, "the referral is not in the ledger")
    ]
    for letter_id in chosen:
        letter = _letter(engine, letter_id)
        assert (letter.state, letter.resolved_by, letter.note) == (
            "replayed",
            ACTOR,
            "directory fixed",
        )
    for letter_id in (before, at_the_end, other_reason, unknown_referral):
        assert _letter(engine, letter_id).state == "parked"
    assert _letter(engine, discarded).state == "discarded"

    again = replay_dead_letters(
        engine,
        kafka_bootstrap,
        window,
        sealer=SEALER,
        actor="cli:pim",
        note="once more, to be sure",
    )
    assert _ids(again, Outcome.REPLAYED) == set()
    assert [letter.dead_letter_id for letter in again.letters] == [unknown_referral]

    everything = [*chosen, before, at_the_end, other_reason, discarded]
    assert _arrived(kafka_bootstrap, topic, everything) == dict.fromkeys(chosen, 1)
    with engine.connect() as connection:
        replays = connection.execute(
            select(audit_log.c.detail).where(audit_log.c.action == "replayed-dead-letter")
        ).scalars()
        audited = {detail["subject"] for detail in replays}
    assert audited == set(chosen)


def test_two_runs_at_once_replay_each_letter_exactly_once(
    engine: Engine, kafka_bootstrap: str, topic: str, hour: datetime
) -> None:
    letters = [_park(engine, topic, hour + timedelta(seconds=i)) for i in range(24)]
    window = replay_window("unroutable", hour, hour + timedelta(minutes=1), datetime.now(UTC))
    results: dict[str, BulkReplay] = {}
    start = threading.Barrier(2)

    def run(operator: str) -> None:
        start.wait()
        results[operator] = replay_dead_letters(
            engine, kafka_bootstrap, window, sealer=SEALER, actor=operator, note="both at once"
        )

    runs = [threading.Thread(target=run, args=(f"cli:{name}",)) for name in ("olga", "pim")]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join(timeout=60)
    olga, pim = results["cli:olga"], results["cli:pim"]

    by_olga, by_pim = _ids(olga, Outcome.REPLAYED), _ids(pim, Outcome.REPLAYED)
    assert not by_olga & by_pim, "no letter replayed by both"
    assert by_olga | by_pim == set(letters)
    assert _arrived(kafka_bootstrap, topic, letters) == dict.fromkeys(letters, 1)
    for result in (olga, pim):
        assert {letter.outcome for letter in result.letters} <= {Outcome.REPLAYED, Outcome.TAKEN}


def test_a_record_kafka_refuses_leaves_its_letter_parked_again_with_the_error(
    engine: Engine, kafka_bootstrap: str, hour: datetime
) -> None:
    missing_topic = f"brug.test.replay.missing.{uuid.uuid4().hex[:8]}.v1"  # never created
    letter_id = _park(engine, missing_topic, hour)
    window = replay_window("unroutable", hour, hour + timedelta(minutes=1), datetime.now(UTC))

    done = replay_dead_letters(
        engine,
        kafka_bootstrap,
        window,
        sealer=SEALER,
        actor=ACTOR,
        note="topic back",
        timeout_seconds=1.0,
    )

    assert [letter.outcome for letter in done.letters] == [Outcome.NOT_SENT]
    letter = _letter(engine, letter_id)
    assert (letter.state, letter.claimed_by, letter.claimed_at) == ("parked", None, None)
    assert letter.replay_error is not None and letter.replay_error.startswith("not sent: ")
    assert letter.replay_failed_at is not None
    with engine.connect() as connection:
        actions = connection.execute(
            select(audit_log.c.action).where(audit_log.c.detail["subject"].astext == letter_id)
        ).scalars()
        assert list(actions) == ["replay-failed-dead-letter"]


def test_a_claim_without_an_outcome_is_taken_up_only_when_stale_and_only_by_its_id(
    engine: Engine, kafka_bootstrap: str, topic: str, hour: datetime
) -> None:
    fresh, stale = _park(engine, topic, hour), _park(engine, topic, hour + timedelta(seconds=1))
    now = datetime.now(UTC)
    claims = {fresh: now - timedelta(minutes=1), stale: now - timedelta(minutes=11)}
    for letter_id, claimed_at in claims.items():
        with engine.begin() as connection:  # as a run that died after claiming leaves it
            connection.execute(
                update(dead_letters)
                .where(dead_letters.c.dead_letter_id == letter_id)
                .values(state=REPLAYING, claimed_by="cli:gone", claimed_at=claimed_at)
            )
    window = replay_window("unroutable", hour, hour + timedelta(minutes=1), now)
    assert (
        replay_dead_letters(
            engine, kafka_bootstrap, window, sealer=SEALER, actor=ACTOR, note="x"
        ).letters
        == []
    ), "a bulk replay never takes up a claim"

    with pytest.raises(ActionRefused, match="being replayed by cli:gone"):
        replay_dead_letter(engine, kafka_bootstrap, fresh, sealer=SEALER, actor=ACTOR, note="")
    result = replay_dead_letter(
        engine, kafka_bootstrap, stale, sealer=SEALER, actor=ACTOR, note="checked"
    )
    assert result.message == f"replayed to {topic}"
    assert _letter(engine, stale).state == "replayed"
    assert _arrived(kafka_bootstrap, topic, [fresh, stale]) == {stale: 1}
    with pytest.raises(ActionRefused, match="already replayed by cli:olga"):
        replay_dead_letter(engine, kafka_bootstrap, stale, sealer=SEALER, actor="cli:pim", note="")


def test_a_replayed_record_carries_its_original_headers_and_the_replay_header(
    engine: Engine, kafka_bootstrap: str, topic: str, hour: datetime
) -> None:
    letter_id = _park(engine, topic, hour)
    replay_dead_letter(engine, kafka_bootstrap, letter_id, sealer=SEALER, actor=ACTOR, note="")
    record = wait_for_record(
        kafka_bootstrap, topic, lambda r: r.key == f"letter-{letter_id}".encode(), timeout=15
    )
    assert dict(record.headers) == {
        "ce_type": b"nl.brug.test.v1",
        REPLAY_HEADER: letter_id.encode(),
    }
    assert json.loads(record.value) == {"letter": letter_id}


def test_the_original_is_sealed_at_rest_and_replays_as_it_was_received(
    engine: Engine, kafka_bootstrap: str, topic: str, hour: datetime
) -> None:
    letter_id = _park(engine, topic, hour)
    stored = _letter(engine, letter_id).original_value
    assert is_sealed(stored) and letter_id not in stored, "no plain original in the ledger"
    replay_dead_letter(engine, kafka_bootstrap, letter_id, sealer=SEALER, actor=ACTOR, note="")
    record = wait_for_record(
        kafka_bootstrap, topic, lambda r: r.key == f"letter-{letter_id}".encode(), timeout=15
    )
    assert json.loads(record.value) == {"letter": letter_id}


def test_a_letter_stored_before_sealing_or_under_a_rotated_key_still_replays(
    engine: Engine, kafka_bootstrap: str, topic: str, hour: datetime
) -> None:
    legacy = _park(engine, topic, hour)
    with engine.begin() as connection:  # as rows written before sealing are: plain text
        connection.execute(
            update(dead_letters)
            .where(dead_letters.c.dead_letter_id == legacy)
            .values(original_value=json.dumps({"letter": legacy}))
        )
    sealed_before = _park(engine, topic, hour + timedelta(minutes=1))
    newer = "kid2:" + "a2V5LTItbmV3ZXItdGhhbi10aGUtZGV2LWtleS0zMmI="
    rotated = Sealer.parse(f"{newer},{DEV_DEAD_LETTER_KEYS}")
    for letter_id in (legacy, sealed_before):
        result = replay_dead_letter(
            engine, kafka_bootstrap, letter_id, sealer=rotated, actor=ACTOR, note=""
        )
        assert result.message == f"replayed to {topic}"
    assert _arrived(kafka_bootstrap, topic, [legacy, sealed_before]) == {
        legacy: 1,
        sealed_before: 1,
    }


def test_a_letter_whose_key_is_gone_is_refused_and_stays_parked(
    engine: Engine, kafka_bootstrap: str, topic: str, hour: datetime
) -> None:
    letter_id = _park(engine, topic, hour)
    other = Sealer.parse("kid9:" + "b3RoZXIta2V5LW5vdC10aGUtb25lLWl0LXVzZWQtMzI=")
    with pytest.raises(ActionRefused, match="does not hold"):
        replay_dead_letter(engine, kafka_bootstrap, letter_id, sealer=other, actor=ACTOR, note="")
    assert _letter(engine, letter_id).state == "parked"
