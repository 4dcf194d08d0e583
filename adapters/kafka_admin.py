"""Kafka administration through kafka-python: reachability, topic creation, health.

Used by the dev stack, the tests and the operator tooling (console, ``brug lag``);
services talk to Kafka through FastStream instead (``adapters.runtime.kafka``).
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import (
    ClusterAuthorizationFailedError,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    NotEnoughReplicasError,
    RecordListTooLargeError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)

from adapters.kafka_security import KafkaCredentials


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 3
    config: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class BrokerHealth:
    reachable: bool
    detail: str
    broker_count: int = 0
    topic_count: int = 0


def _admin(
    bootstrap_servers: str, timeout_ms: int = 5000, credentials: KafkaCredentials | None = None
) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        client_id="brug-admin",
        request_timeout_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
        **_options(credentials),
    )


def _options(credentials: KafkaCredentials | None) -> dict[str, object]:
    """kafka-python's security options: the given credentials, else the environment's."""
    return (credentials or KafkaCredentials()).kafka_python()


def broker_health(
    bootstrap_servers: str, credentials: KafkaCredentials | None = None
) -> BrokerHealth:
    """Ask the cluster for its brokers and topics; never raises."""
    try:
        admin = _admin(bootstrap_servers, timeout_ms=3000, credentials=credentials)
    except (KafkaError, OSError, ValueError) as error:
        return BrokerHealth(False, f"unreachable: {error!r}")
    try:
        cluster = admin.describe_cluster()
        topics = admin.list_topics()
    except (KafkaError, OSError) as error:
        return BrokerHealth(False, f"not answering: {error!r}")
    finally:
        admin.close()
    brokers = len(cluster.get("brokers", []))
    return BrokerHealth(True, "ok", broker_count=brokers, topic_count=len(topics))


def wait_until_reachable(
    bootstrap_servers: str, timeout: float = 60.0, credentials: KafkaCredentials | None = None
) -> BrokerHealth:
    """Poll until the cluster answers metadata requests, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    health = broker_health(bootstrap_servers, credentials)
    while not (health.reachable and health.broker_count > 0):
        if time.monotonic() > deadline:
            raise TimeoutError(f"Kafka at {bootstrap_servers} did not answer: {health.detail}")
        time.sleep(0.5)
        health = broker_health(bootstrap_servers, credentials)
    return health


def ensure_topics(
    bootstrap_servers: str,
    topics: Iterable[TopicSpec],
    credentials: KafkaCredentials | None = None,
) -> list[str]:
    """Create the topics that do not exist yet, and give the existing ones their configuration
    (a retention shortened since they were created applies to them too); return the names
    created."""
    admin = _admin(bootstrap_servers, credentials=credentials)
    try:
        wanted = list(topics)
        existing = set(admin.list_topics())
        configured = [t for t in wanted if t.name in existing and t.config]
        if configured:
            admin.alter_configs(
                [
                    ConfigResource(ConfigResourceType.TOPIC, t.name, dict(t.config))
                    for t in configured
                ]
            )
        missing = [topic for topic in wanted if topic.name not in existing]
        if not missing:
            return []
        # Another process may create one between list and create; that is fine.
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics(
                [
                    NewTopic(
                        name=topic.name,
                        num_partitions=topic.partitions,
                        replication_factor=-1,  # the cluster's default.replication.factor
                        topic_configs=dict(topic.config),
                    )
                    for topic in missing
                ]
            )
        return [topic.name for topic in missing]
    finally:
        admin.close()


@dataclass(frozen=True)
class GroupLag:
    """How far one consumer group is behind on one topic (summed over partitions)."""

    group: str
    topic: str
    lag: int
    committed: int
    end: int


def _offsets_reader(
    bootstrap_servers: str, credentials: KafkaCredentials | None = None
) -> KafkaConsumer:
    # No group: it only asks for offsets and never joins, commits or reads a record.
    return KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        client_id="brug-admin-offsets",
        enable_auto_commit=False,
        request_timeout_ms=5000,
        **_options(credentials),
    )


def consumer_lag(
    bootstrap_servers: str, credentials: KafkaCredentials | None = None
) -> list[GroupLag]:
    """Every consumer group's lag per topic (end offset minus committed offset): Brug's
    services and the organisations' case systems alike."""
    admin = _admin(bootstrap_servers, credentials=credentials)
    reader = _offsets_reader(bootstrap_servers, credentials)
    try:
        groups = sorted(group["group_id"] for group in admin.list_groups())
        found = admin.list_group_offsets({group: None for group in groups}) if groups else {}
        committed = {
            group: {tp: meta.offset for tp, meta in offsets.items()}
            for group, offsets in found.items()
        }
        partitions = {tp for offsets in committed.values() for tp in offsets}
        ends = reader.end_offsets(list(partitions)) if partitions else {}
    finally:
        reader.close()
        admin.close()
    return _summed_lag(committed, ends)


def _summed_lag(
    committed: dict[str, dict[TopicPartition, int]], ends: dict[TopicPartition, int]
) -> list[GroupLag]:
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for group, offsets in committed.items():
        for tp, offset in offsets.items():
            end = ends.get(tp, offset)
            total = totals[(group, tp.topic)]
            total[0] += max(0, end - max(offset, 0))
            total[1] += max(offset, 0)
            total[2] += end
    return [GroupLag(g, t, lag, c, e) for (g, t), (lag, c, e) in sorted(totals.items())]


def messages_per_minute(
    bootstrap_servers: str, minutes: int = 60, prefix: str = "brug.", now: datetime | None = None
) -> dict[str, list[int]]:
    """Records written per topic in each of the last ``minutes`` minutes, oldest first.

    Read from Kafka's own record timestamps (``offsets_for_times``), so it needs no sampler
    and is right from the first look, after restarts too."""
    reader = _offsets_reader(bootstrap_servers)
    try:
        topics = sorted(t for t in reader.topics() if t.startswith(prefix))
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in reader.partitions_for_topic(topic) or ()
        ]
        if not partitions:
            return {}
        ends = reader.end_offsets(partitions)
        end_minute = (now or datetime.now(UTC)).replace(second=0, microsecond=0) + timedelta(
            minutes=1
        )
        boundaries = [end_minute - timedelta(minutes=minutes - i) for i in range(minutes + 1)]
        offsets_at = [_offsets_at(reader, partitions, ends, at) for at in boundaries]
    finally:
        reader.close()
    return {
        topic: [
            sum(later[tp] - earlier[tp] for tp in partitions if tp.topic == topic)
            for earlier, later in itertools.pairwise(offsets_at)
        ]
        for topic in topics
    }


def _offsets_at(
    reader: KafkaConsumer,
    partitions: list[TopicPartition],
    ends: dict[TopicPartition, int],
    at: datetime,
) -> dict[TopicPartition, int]:
    """Per partition, the offset of the first record written at or after ``at``."""
    millis = int(at.timestamp() * 1000)
    found = reader.offsets_for_times({tp: millis for tp in partitions})
    return {tp: found[tp].offset if found.get(tp) else ends[tp] for tp in partitions}


class NotSent(Exception):
    """Kafka certainly did not take the record (no topic, not allowed, too large...)."""


class SentUnconfirmed(Exception):
    """The record went to Kafka but no acknowledgement came: it may be on the topic."""


# Errors with which the broker refuses a record before appending it.
_REFUSED = (
    TopicAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    UnknownTopicOrPartitionError,
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    NotEnoughReplicasError,
)


class Republisher:
    """Writes records again (operators' replays) on one producer, each acknowledged by
    every in-sync replica; ``send`` tells a record Kafka certainly did not take
    (``NotSent``) from one whose fate is unknown (``SentUnconfirmed``). The producer is
    made by ``connect`` or the first ``send``."""

    def __init__(self, bootstrap_servers: str, *, timeout_seconds: float = 10.0) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._timeout_seconds = timeout_seconds
        self._producer: KafkaProducer | None = None

    def connect(self) -> KafkaProducer:
        """Reach Kafka now (raises KafkaError if it cannot be reached)."""
        if self._producer is None:
            timeout_ms = int(self._timeout_seconds * 1000)
            self._producer = KafkaProducer(
                bootstrap_servers=self._bootstrap_servers,
                client_id="brug-replay",
                acks="all",
                retries=5,
                bootstrap_timeout_ms=timeout_ms,
                max_block_ms=timeout_ms,  # the topic's metadata, before anything is sent
                request_timeout_ms=timeout_ms,
                delivery_timeout_ms=2
                * timeout_ms,  # the producer answers before ``send``'s wait ends
                **_options(None),
            )
        return self._producer

    def send(
        self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        try:  # raised here, nothing has left the process
            future = self.connect().send(topic, value=value, key=key, headers=headers)
        except (KafkaError, ValueError, TypeError) as error:
            raise NotSent(type(error).__name__) from error
        try:
            future.get(timeout=2 * self._timeout_seconds + 1)
        except _REFUSED as error:
            raise NotSent(type(error).__name__) from error
        except KafkaError as error:
            raise SentUnconfirmed(type(error).__name__) from error

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=self._timeout_seconds)
            self._producer = None

    def __enter__(self) -> Republisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
