"""``brug monitor rebuild``: replay Brug's event topics from the start into the rebuild
table, through the same ``apply_record`` as the live service, then swap it in.

1. Every partition of every monitored topic (``MONITORED_TOPICS``, as the cluster lists
   them: an organisation that left the directory still counts) is read from its first
   offset, without a consumer group (nothing is committed), up to its end at the start:
   the referral topics (submitted, each organisation's referrals) first, then the status
   and overdue topics, as the events happened (a status follows the ``ReferralCreated``
   that named its organisation; read the other way round, a status from an organisation
   the referral never went to would count).
2. The swap: one transaction locks the live table against writes (the live service waits),
   reads what arrived meanwhile up to the ends at that moment, and replaces the live rows
   with the rebuilt ones. What the live service applied before the lock is in the topics
   before those ends; what it applies after, it applies to the rebuilt rows, whose event
   digests make its redeliveries repeats.

A topic whose log no longer starts at offset 0 has lost records to retention: a rebuild
from it would silently drop referrals the live dataset still counts, so it is refused
unless ``allow_truncated`` (then the result names those partitions). Without ``swap`` the
rebuilt rows stay in ``monitor_rebuild_referrals`` to compare.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import Connection, Engine, func, select, text

from adapters.kafka_security import KafkaCredentials
from adapters.monitor.projection import (
    MONITORED_TOPICS,
    REFERRAL_TOPICS,
    Outcome,
    apply_record,
)
from adapters.monitor.store import LIVE, REBUILD, MonitorStore

POLL_MS = 500
OFFSET_ATTEMPTS = 5
STALLED_SECONDS = 60.0  # no record for this long while a partition is behind its end
_LOCK = 0x6D6F6E69  # pg advisory lock: one rebuild at a time ("moni")


class RebuildRefused(RuntimeError):
    pass


@dataclass
class RebuildResult:
    partitions: int = 0
    outcomes: Counter[Outcome] = field(default_factory=Counter)
    truncated: list[str] = field(default_factory=list)
    rows: int = 0
    swapped: bool = False

    @property
    def records(self) -> int:
        return sum(self.outcomes.values())


def rebuild(
    engine: Engine,
    bootstrap_servers: str,
    key: str,
    *,
    credentials: KafkaCredentials | None = None,
    swap: bool = True,
    allow_truncated: bool = False,
) -> RebuildResult:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        client_id="brug-monitor-rebuild",
        enable_auto_commit=False,
        **(credentials or KafkaCredentials()).kafka_python(),
    )
    result = RebuildResult()
    try:
        partitions = _partitions(consumer)
        result.partitions = len(partitions)
        starts = _offsets(consumer.beginning_offsets, partitions)
        result.truncated = sorted(f"{p.topic}/{p.partition}" for p, o in starts.items() if o)
        if result.truncated and not allow_truncated:
            raise RebuildRefused(
                "records have aged out of "
                + ", ".join(result.truncated)
                + ": a rebuild would lose referrals the live dataset holds"
            )
        with engine.connect() as connection:
            _lock(connection)
            try:
                MonitorStore(connection, REBUILD).clear()
                connection.commit()
                first = [p for p in partitions if REFERRAL_TOPICS.fullmatch(p.topic)]
                for phase in (first, partitions):
                    if not phase:
                        continue
                    read_so_far = {p: consumer.position(p) for p in consumer.assignment()}
                    consumer.assign(phase)
                    for partition in phase:
                        consumer.seek(partition, read_so_far.get(partition, starts[partition]))
                    _replay(consumer, connection, key, result, commit_each_batch=True)
                if swap:
                    connection.execute(text(f"LOCK TABLE {LIVE.name} IN EXCLUSIVE MODE"))
                    if partitions:
                        _replay(consumer, connection, key, result, commit_each_batch=False)
                    result.rows = MonitorStore(connection, LIVE).replace_with(REBUILD)
                    MonitorStore(connection, REBUILD).clear()
                    result.swapped = True
                else:
                    result.rows = MonitorStore(connection, REBUILD).count()
                connection.commit()
            finally:
                connection.rollback()
                connection.execute(select(func.pg_advisory_unlock(_LOCK)))
                connection.commit()
    finally:
        consumer.close()
    return result


def _partitions(consumer: KafkaConsumer) -> list[TopicPartition]:
    names: Iterable[str] = sorted(t for t in consumer.topics() if MONITORED_TOPICS.match(t))
    return [
        TopicPartition(name, partition)
        for name in names
        for partition in sorted(consumer.partitions_for_topic(name) or ())
    ]


def _offsets(
    ask: Callable[[list[TopicPartition]], dict[TopicPartition, int]],
    partitions: list[TopicPartition],
) -> dict[TopicPartition, int]:
    """Beginning or end offsets of every partition. kafka-python 3.0 may answer without a
    partition whose request it retried (a KeyError): those are asked for again."""
    found: dict[TopicPartition, int] = {}
    for attempt in range(OFFSET_ATTEMPTS):
        missing = [p for p in partitions if p not in found]
        if not missing:
            break
        try:
            found.update(ask(missing))
        except KeyError:
            time.sleep(0.1 * (attempt + 1))
            for partition in missing:  # one by one: each answer is kept
                with contextlib.suppress(KeyError):
                    found.update(ask([partition]))
    if missing := [p for p in partitions if p not in found]:
        raise RebuildRefused(f"Kafka gave no offsets for {len(missing)} partition(s)")
    return found


def _lock(connection: Connection) -> None:
    if not connection.execute(select(func.pg_try_advisory_lock(_LOCK))).scalar():
        connection.rollback()
        raise RebuildRefused("another monitor rebuild is running")
    connection.commit()


def _replay(
    consumer: KafkaConsumer,
    connection: Connection,
    key: str,
    result: RebuildResult,
    *,
    commit_each_batch: bool,
) -> None:
    """Apply every record up to the partitions' ends as they are now."""
    ends = _offsets(consumer.end_offsets, list(consumer.assignment()))
    behind = {p for p, end in ends.items() if consumer.position(p) < end}
    progress = time.monotonic()
    while behind:
        for partition, records in consumer.poll(timeout_ms=POLL_MS).items():
            progress = time.monotonic()
            for record in records:
                if record.offset >= ends[partition]:
                    # Arrived after the ends: read again in the swap's round (or, after
                    # it, by the live service).
                    consumer.seek(partition, record.offset)
                    break
                outcome = apply_record(
                    connection, record.topic, bytes(record.value or b""), key, REBUILD
                )
                result.outcomes[outcome] += 1
        if commit_each_batch:
            connection.commit()
        behind = {p for p in behind if consumer.position(p) < ends[p]}
        if behind and time.monotonic() - progress > STALLED_SECONDS:
            raise RebuildRefused(f"no records from {len(behind)} partitions behind their end")


def differences(connection: Connection) -> list[str]:
    """Pseudonyms whose rebuilt row (``monitor_rebuild_referrals``) is not the live one,
    or that only one of them has (the event digests aside: they are the same events)."""
    live = {s.pseudonym: s for s in MonitorStore(connection, LIVE).states()}
    rebuilt = {s.pseudonym: s for s in MonitorStore(connection, REBUILD).states()}
    return sorted(p for p in live.keys() | rebuilt.keys() if live.get(p) != rebuilt.get(p))
