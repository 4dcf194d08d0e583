"""Kafka administration through kafka-python: reachability, topic creation, health.

Used by the dev stack, the tests and (later) the operator tooling; services talk
to Kafka through FastStream instead (``adapters.runtime.kafka``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError


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


def _admin(bootstrap_servers: str, timeout_ms: int = 5000) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        client_id="brug-admin",
        request_timeout_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
    )


def broker_health(bootstrap_servers: str) -> BrokerHealth:
    """Ask the cluster for its brokers and topics; never raises."""
    try:
        admin = _admin(bootstrap_servers, timeout_ms=3000)
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


def wait_until_reachable(bootstrap_servers: str, timeout: float = 60.0) -> BrokerHealth:
    """Poll until the cluster answers metadata requests, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    health = broker_health(bootstrap_servers)
    while not (health.reachable and health.broker_count > 0):
        if time.monotonic() > deadline:
            raise TimeoutError(f"Kafka at {bootstrap_servers} did not answer: {health.detail}")
        time.sleep(0.5)
        health = broker_health(bootstrap_servers)
    return health


def ensure_topics(bootstrap_servers: str, topics: Iterable[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = _admin(bootstrap_servers)
    try:
        existing = set(admin.list_topics())
        missing = [topic for topic in topics if topic.name not in existing]
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
