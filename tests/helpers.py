"""Small helpers the integration and end-to-end tests share: produce, and wait to consume."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from adapters.kafka_security import KafkaCredentials

T = TypeVar("T")


def _as(credentials: KafkaCredentials | None) -> dict[str, object]:
    """As whom a helper connects: the given principal, else the environment's (on the
    suite's shared broker, its super user: see ``tests/conftest.py``)."""
    return (credentials or KafkaCredentials()).kafka_python()


def _reader(bootstrap: str, credentials: KafkaCredentials | None) -> KafkaConsumer:
    """A consumer outside any group: it reads, and commits nothing."""
    return KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **_as(credentials))


def produce(
    bootstrap: str,
    topic: str,
    value: bytes,
    key: bytes | None = None,
    *,
    partition: int | None = None,
    credentials: KafkaCredentials | None = None,
) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **_as(credentials))
    try:
        producer.send(topic, value=value, key=key, partition=partition).get(timeout=15)
    finally:
        producer.close()


def wait_for_record(
    bootstrap: str,
    topic: str,
    matches: Callable[[ConsumerRecord], bool],
    timeout: float = 30.0,
    credentials: KafkaCredentials | None = None,
) -> ConsumerRecord:
    """The first record on ``topic`` (read from the beginning) for which ``matches`` holds."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **_as(credentials)
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        assert partitions, f"topic {topic} does not exist"
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=300).values():
                for record in records:
                    if matches(record):
                        return record
        raise AssertionError(f"no matching record on {topic} within {timeout}s")
    finally:
        consumer.close()


def records_with_key(
    bootstrap: str,
    topic: str,
    key: bytes,
    settle: float = 2.0,
    credentials: KafkaCredentials | None = None,
) -> list[bytes]:
    """Every record value on ``topic`` with ``key``, reading until the topic is quiet."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **_as(credentials)
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        found: list[bytes] = []
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < settle:
            batch = consumer.poll(timeout_ms=300)
            if batch:
                quiet_since = time.monotonic()
            found += [r.value for rs in batch.values() for r in rs if r.key == key]
        return found
    finally:
        consumer.close()


def collect_by_key(
    bootstrap: str,
    topic: str,
    keys: set[bytes],
    timeout: float = 60.0,
    settle: float = 1.0,
    credentials: KafkaCredentials | None = None,
) -> dict[bytes, list[bytes]]:
    """Every record value on ``topic`` for each of ``keys``: read from the beginning until
    all keys were seen (or ``timeout``), then ``settle`` seconds more to catch duplicates."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **_as(credentials)
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        found: dict[bytes, list[bytes]] = {}
        deadline = time.monotonic() + timeout
        settled_at: float | None = None
        while time.monotonic() < (settled_at or deadline):
            for records in consumer.poll(timeout_ms=300).values():
                for record in records:
                    if record.key in keys:
                        found.setdefault(record.key, []).append(record.value)
            if settled_at is None and len(found) == len(keys):
                settled_at = time.monotonic() + settle
        return found
    finally:
        consumer.close()


def eventually(
    check: Callable[[], T | None], what: str, timeout: float = 30.0, interval: float = 0.2
) -> T:
    """``check()``'s first truthy result, polled until ``timeout``: the one way tests wait."""
    deadline = time.monotonic() + timeout
    while True:
        if result := check():
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g}s: {what}")
        time.sleep(interval)
