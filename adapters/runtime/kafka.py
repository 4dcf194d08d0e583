"""The Kafka broker every service uses: durable publishing, commit after handling."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final

import structlog
from faststream import AckPolicy, BaseMiddleware
from faststream.kafka import KafkaBroker, KafkaRouter
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.message import StreamMessage

from adapters.runtime import metrics, tracing
from adapters.runtime.deadletter import DeadLetterPolicy
from adapters.runtime.health import readiness_for
from adapters.runtime.logging import bind_ids
from adapters.runtime.service import brug_version
from adapters.runtime.settings import ServiceSettings


def make_broker(settings: ServiceSettings, *, service: str) -> KafkaBroker:
    """A FastStream Kafka broker configured the one way Brug uses Kafka.

    - ``acks="all"`` + idempotence: a publish returns only once every in-sync replica
      has the record, and producer retries never write it twice.
    - ``NACK_ON_ERROR``: the offset is committed after the handler returns; a failure
      seeks back so the record is redelivered (the dead-letter policy bounds that).

    Every service builds exactly one broker, so this is also where its signals start:
    tracing, the ``/metrics`` server and the middlewares that feed both (outermost first:
    the trace span, FastStream's metrics, the record's ids on log lines and span, the
    dead-letter policy, Brug's per-type counts).
    """
    provider = tracing.configure_tracing(service, settings.trace_dir)
    metrics.start_metrics(
        service,
        brug_version(),
        host=settings.metrics_host,
        port=settings.metrics_port,
        readiness=readiness_for(settings),
    )
    broker = KafkaBroker(
        # A cluster's "host:port,host:port": FastStream takes one string as one address.
        [server.strip() for server in settings.kafka_bootstrap_servers.split(",")],
        client_id=f"brug-{service}",
        security=settings.kafka_credentials.faststream(),
        acks="all",
        enable_idempotence=True,
        ack_policy=COMMIT_AFTER_HANDLING,
        graceful_timeout=settings.graceful_timeout_seconds,
        logger=logging.getLogger(f"brug.{service}"),
        description=f"Brug {service} service",
        decoder=decode_cloudevents,
    )
    broker.add_middleware(KafkaTelemetryMiddleware(tracer_provider=provider))
    broker.add_middleware(metrics.kafka_metrics_middleware(service))
    broker.add_middleware(MessageIds)
    broker.add_middleware(
        DeadLetterPolicy(broker, service=service, max_attempts=settings.max_handler_attempts)
    )
    broker.add_middleware(metrics.MessageCounting(service))
    return broker


# Every subscriber's ack policy: commit only what was handled (``make_broker``'s docstring).
COMMIT_AFTER_HANDLING: Final = AckPolicy.NACK_ON_ERROR


def service_router() -> KafkaRouter:
    """The ``KafkaRouter`` every service declares its subscribers on.

    It carries the ack policy itself: FastStream fixes a subscriber's policy, its auto
    commit and its consumer class when the subscriber is declared, before the router is
    included in the broker. On a bare ``KafkaRouter()`` every subscriber ran ACK_FIRST,
    auto-committing what it had fetched, and one with ``max_workers`` handled records of
    the same partition at once: a referral's statuses were applied out of order."""
    return KafkaRouter(ack_policy=COMMIT_AFTER_HANDLING)


def consumer_group(service: str) -> str:
    """One consumer group per service: replicas share the work, services each see everything."""
    return f"brug-{service}"


# Where a group without committed offsets starts: its first start, or a restart after it
# was killed before its first commit. Every handler is idempotent, so reading from the
# beginning costs a replay, whereas Kafka's default ("latest") silently skips what was
# published while the group had no consumer.
NEW_GROUP_STARTS_AT: Final = "earliest"


async def decode_cloudevents(
    message: StreamMessage[Any], default: Callable[[StreamMessage[Any]], Awaitable[Any]]
) -> Any:
    """Structured-mode CloudEvents (``application/cloudevents+json``) are JSON documents;
    FastStream decodes only ``application/json`` by itself."""
    if (message.content_type or "").startswith("application/cloudevents+json"):
        return json.loads(message.body)
    return await default(message)


# What may be put on log lines and spans as an event id: CloudEvents ids from other
# producers are free strings, so only id-like ones are taken.
_EVENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


def record_ids(decoded: Any) -> tuple[str | None, str | None]:
    """(referral id, event id) of a decoded CloudEvent; None for what is not one, or not
    shaped like an id (a stray value must not carry personal data into logs)."""
    if not isinstance(decoded, dict) or "specversion" not in decoded:
        return None, None
    data = decoded.get("data")
    candidate = data.get("referral_id") if isinstance(data, dict) else None
    referral_id = _as_uuid(candidate) or _as_uuid(decoded.get("subject"))
    event_id = decoded.get("id")
    return referral_id, event_id if isinstance(event_id, str) and _EVENT_ID.match(
        event_id
    ) else None


def _as_uuid(value: Any) -> str | None:
    try:
        return str(uuid.UUID(str(value))) if value is not None else None
    except ValueError:
        return None


class MessageIds(BaseMiddleware):
    """Binds the record's referral id and event id to every log line its handling writes
    (and to its span), and unbinds them afterwards: a consumer task handles record after
    record, so bindings must not carry over."""

    async def consume_scope(self, call_next: Any, msg: StreamMessage[Any]) -> Any:
        before = structlog.contextvars.get_contextvars()
        try:
            try:
                decoded = await msg.decode()
            except Exception:  # the handler meets the same error, and the record is parked
                decoded = None
            referral_id, event_id = record_ids(decoded)
            bind_ids(referral_id=referral_id, event_id=event_id)
            return await call_next(msg)
        finally:
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(**before)
