"""Prometheus metrics every service exposes on ``BRUG_METRICS_PORT`` at ``/metrics``.

Labels are low-cardinality and never carry personal data or referral ids: a service name,
a CloudEvents type, a reason or outcome code, a route *template*. Ids belong in logs and
traces, where they can be looked up; in labels they would make a new time series each.
FastStream's ``KafkaPrometheusMiddleware`` adds the ``faststream_*`` series (received,
processed by status, latency, publishes) per topic; the ``process_*`` series (with
``process_start_time_seconds``, which the console turns into uptime) come from the default
registry's process collector.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import structlog
from faststream import BaseMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from adapters.runtime.health import Readiness, health_wsgi

log = structlog.get_logger("brug.metrics")

# From a quick hop (routing, well under a second) to a status applied days later.
END_TO_END_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400, 7 * 86400)

BUILD_INFO = Gauge(
    "brug_build_info", "Always 1; the labels say which Brug runs here.", ["service", "version"]
)
DEAD_LETTERED = Counter(
    "brug_dead_lettered", "Records parked on brug.deadletter.v1.", ["service", "reason"]
)
ORPHANS_DROPPED = Counter(
    "brug_orphan_events_dropped",
    "Events about a referral the ledger never held, dropped without retry or dead letter.",
    ["service", "type"],
)
MESSAGES_HANDLED = Counter(
    "brug_messages_handled", "Kafka records handled, by CloudEvents type.", ["service", "type"]
)
MESSAGES_FAILED = Counter(
    "brug_messages_failed",
    "Failed handling attempts of Kafka records, by CloudEvents type (a retried record "
    "counts once per attempt).",
    ["service", "type"],
)
END_TO_END = Histogram(
    "brug_referral_end_to_end_seconds",
    "From when a referral step started to when Brug finished it: stage 'routed' is the "
    "GP's submission to the organisation's event; 'status-applied' a case system's status "
    "report to the GP's Task updated.",
    ["service", "stage"],
    buckets=END_TO_END_BUCKETS,
)
WEBHOOK_ATTEMPTS = Counter(
    "brug_webhook_attempts",
    "Webhook POSTs to organisations: delivered, retry (failed, will retry), parked.",
    ["service", "outcome"],
)
NOTIFICATIONS = Counter(
    "brug_notifications",
    "POSTs to GP systems' Subscription endpoints, by kind and outcome (delivered, failed).",
    ["service", "kind", "outcome"],
)
HTTP_REQUESTS = Counter(
    "brug_http_requests",
    "HTTP requests answered, by route template and status.",
    ["service", "method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "brug_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["service", "method", "route"],
)


def observe_end_to_end(service: str, stage: str, since: datetime) -> None:
    """One referral step done, ``since`` its start (another host's clock: never below 0)."""
    seconds = (datetime.now(UTC) - since).total_seconds()
    END_TO_END.labels(service=service, stage=stage).observe(max(0.0, seconds))


_started: set[int] = set()
_lock = threading.Lock()


def start_metrics(
    service: str, version: str, *, host: str, port: int, readiness: Readiness | None = None
) -> None:
    """Announce the build and serve ``/metrics`` (and ``/health/live``, ``/health/ready``:
    ``adapters/runtime/health.py``) on ``port`` (0: not served); once per port, so a
    process that builds two brokers (tests, ``brug contracts generate``) is fine."""
    BUILD_INFO.labels(service=service, version=version).set(1)
    if port <= 0:
        return
    with _lock:
        if port in _started:
            return
        app = health_wsgi(readiness, make_wsgi_app(REGISTRY))
        server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
        _started.add(port)
    log.info("metrics served", metrics_port=port)


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr: a scrape or probe every few seconds is not news."""

    def log_message(self, format: str, *args: Any) -> None:
        return


def kafka_metrics_middleware(service: str) -> KafkaPrometheusMiddleware:
    """FastStream's own Kafka series, with ``app_name`` set to the service."""
    return KafkaPrometheusMiddleware(registry=REGISTRY, app_name=service)


EVENT_TYPE = re.compile(r"^nl\.brug\.[a-z0-9.-]{1,80}\.v[0-9]{1,3}$")
OTHER_TYPE = "other"


def event_type_label(decoded: Any) -> str:
    """The CloudEvents type of a decoded record, or ``other``: a label value only ever
    comes from Brug's own type pattern, so a sender cannot mint new time series."""
    kind = decoded.get("type") if isinstance(decoded, dict) else None
    return kind if isinstance(kind, str) and EVENT_TYPE.match(kind) else OTHER_TYPE


class MessageCounting:
    """Broker middleware factory counting handled and failed records by CloudEvents type.

    It sits inside the dead-letter policy, so it sees each handler outcome as it is."""

    def __init__(self, service: str) -> None:
        self.service = service

    def __call__(self, msg: Any, /, *, context: Any) -> _CountingMiddleware:
        return _CountingMiddleware(msg, context=context, service=self.service)


class _CountingMiddleware(BaseMiddleware):
    def __init__(self, msg: Any, /, *, context: Any, service: str) -> None:
        super().__init__(msg, context=context)
        self.service = service

    async def consume_scope(self, call_next: Any, msg: Any) -> Any:
        try:
            decoded = await msg.decode()
        except Exception:  # undecodable: the handler fails on it and it is parked
            decoded = None
        labels = {"service": self.service, "type": event_type_label(decoded)}
        try:
            result = await call_next(msg)
        except Exception:
            MESSAGES_FAILED.labels(**labels).inc()
            raise
        MESSAGES_HANDLED.labels(**labels).inc()
        return result
