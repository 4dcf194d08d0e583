"""What every Brug deployment needs before services start: the database schema, the
topics, and (on a cluster that authenticates) the ACLs of every principal."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

from kafka.errors import KafkaError

from adapters.clients import ClientKind, load_clients
from adapters.database import migrate
from adapters.directory import load_directory
from adapters.kafka_acls import acl_plan, apply_acls
from adapters.kafka_admin import TopicSpec, ensure_topics
from adapters.kafka_security import KafkaCredentials
from contracts.topics import all_topics

T = TypeVar("T")


def create_topics(
    bootstrap_servers: str,
    directory_path: Path,
    clients_path: Path,
    credentials: KafkaCredentials | None = None,
    retention: Mapping[str, timedelta] | None = None,
) -> list[str]:
    """Create Brug's topics: per organisation from the directory, per GP system from the
    client registry (``retention``: ``all_topics``' keyword arguments). Returns those
    created."""
    organisations = [o.id for o in load_directory(directory_path).organisations]
    gp_systems = [
        c.client_id for c in load_clients(clients_path).clients if c.kind is ClientKind.GP
    ]
    wanted = all_topics(organisations, gp_systems, **(retention or {}))
    specs = [TopicSpec(name, config=tuple(config.items())) for name, config in wanted]
    return ensure_topics(bootstrap_servers, specs, credentials)


def provision(
    bootstrap_servers: str,
    database_url: str,
    directory_path: Path,
    clients_path: Path,
    credentials: KafkaCredentials | None = None,
    retention: Mapping[str, timedelta] | None = None,
) -> str:
    """Migrate the database, create the topics and, when the cluster authenticates (the
    credentials are its super user's), make its ACLs the plan's; idempotent, and the Kafka
    steps tried again while a (re)starting broker refuses admin requests. Returns a
    one-line summary."""
    credentials = credentials or KafkaCredentials()
    revision = migrate(database_url)
    created = retry_while_kafka_starts(
        partial(
            create_topics, bootstrap_servers, directory_path, clients_path, credentials, retention
        )
    )
    summary = f"schema at {revision}; topics created: {', '.join(created) or 'none needed'}"
    if credentials.authenticates:
        plan = acl_plan(load_clients(clients_path))
        changes = retry_while_kafka_starts(
            partial(apply_acls, bootstrap_servers, plan, credentials)
        )
        summary += f"; ACLs added {len(changes.added)}, removed {len(changes.removed)}"
    return summary


def retry_while_kafka_starts(
    action: Callable[[], T],
    *,
    within_seconds: float = 90.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``action``, tried again while Kafka answers with a retriable error. A broker restarted
    after a crash answers metadata requests before it serves admin requests (it is still
    recovering its logs), and those time out for a while; any other error is raised at once."""
    deadline = clock() + within_seconds
    while True:
        try:
            return action()
        except KafkaError as error:
            if not error.retriable or clock() >= deadline:
                raise
            print(f"brug: Kafka not ready for admin requests ({error}); retrying", file=sys.stderr)
            sleep(1.0)
