"""The Kafka broker every service uses: durable publishing, commit after handling."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage

from adapters.runtime.deadletter import DeadLetterPolicy
from adapters.runtime.settings import ServiceSettings


def make_broker(settings: ServiceSettings, *, service: str) -> KafkaBroker:
    """A FastStream Kafka broker configured the one way Brug uses Kafka.

    - ``acks="all"`` + idempotence: a publish returns only once every in-sync replica
      has the record, and producer retries never write it twice.
    - ``NACK_ON_ERROR``: the offset is committed after the handler returns; a failure
      seeks back so the record is redelivered (the dead-letter policy bounds that).
    """
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=f"brug-{service}",
        acks="all",
        enable_idempotence=True,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        graceful_timeout=settings.graceful_timeout_seconds,
        logger=logging.getLogger(f"brug.{service}"),
        description=f"Brug {service} service",
        decoder=decode_cloudevents,
    )
    broker.add_middleware(
        DeadLetterPolicy(broker, service=service, max_attempts=settings.max_handler_attempts)
    )
    return broker


def consumer_group(service: str) -> str:
    """One consumer group per service: replicas share the work, services each see everything."""
    return f"brug-{service}"


async def decode_cloudevents(
    message: StreamMessage[Any], default: Callable[[StreamMessage[Any]], Awaitable[Any]]
) -> Any:
    """Structured-mode CloudEvents (``application/cloudevents+json``) are JSON documents;
    FastStream decodes only ``application/json`` by itself."""
    if (message.content_type or "").startswith("application/cloudevents+json"):
        return json.loads(message.body)
    return await default(message)
