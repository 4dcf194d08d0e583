"""Small helpers the integration and end-to-end tests share: produce, and wait to consume."""

from __future__ import annotations

import time
from collections.abc import Callable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord


def produce(bootstrap: str, topic: str, value: bytes, key: bytes | None = None) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        producer.send(topic, value=value, key=key).get(timeout=15)
    finally:
        producer.close()


def wait_for_record(
    bootstrap: str,
    topic: str,
    matches: Callable[[ConsumerRecord], bool],
    timeout: float = 30.0,
) -> ConsumerRecord:
    """The first record on ``topic`` (read from the beginning) for which ``matches`` holds."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
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


def records_with_key(bootstrap: str, topic: str, key: bytes, settle: float = 2.0) -> list[bytes]:
    """Every record value on ``topic`` with ``key``, reading until the topic is quiet."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
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
