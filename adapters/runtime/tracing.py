"""OpenTelemetry traces: one referral is one trace, across HTTP, Kafka and webhooks.

Each service has a TracerProvider (resource ``service.name=brug-<service>``). Trace context
travels as W3C ``traceparent``: in HTTP headers (in: the edges' middleware, out: webhook
and rest-hook POSTs), in Kafka headers (FastStream's ``KafkaTelemetryMiddleware``) and in
the CloudEvents envelope. With ``BRUG_TRACE_DIR`` set, finished spans are appended as
compact JSON lines to ``<dir>/<service>.jsonl`` (the dev default); an OpenTelemetry collector
gets them over OTLP when the standard variables ask for it (``OTEL_TRACES_EXPORTER=otlp``, or
an ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``; ``OTEL_EXPORTER_OTLP_PROTOCOL`` ``grpc`` or
``http/protobuf``, the default). Without either nothing is exported, but spans still get ids,
so logs and propagated context stay correlated. Database statements (SQLAlchemy, their text
without parameters) and outgoing HTTP requests (httpx) are spans of the trace they run in.

Spans carry ids, topics, routes and status codes only. Exception messages and stack
traces may quote personal data (a validation error echoes its input), so both exporters
keep an exception's type and drop its text (``safe_span``).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Span, SpanKind, Status

from adapters.library_spans import trace_httpx
from contracts import cloudevents

TRACER_NAME = "brug"
# Event attributes that may quote what failed, and so personal data.
_UNSAFE_EVENT_ATTRIBUTES = frozenset({"exception.message", "exception.stacktrace"})
# Span attributes libraries may set (FastAPI's server span records the query string) that
# carry whatever a client put there: a careless search could hold a BSN or a name.
_UNSAFE_SPAN_ATTRIBUTES = frozenset(
    {"url.query", "url.full", "client.address", "client.port", "user_agent.original"}
)

_configured: TracerProvider | None = None
_lock = threading.Lock()


class JsonLinesSpanExporter(SpanExporter):
    """Appends each finished span as one JSON line: small, greppable, no collector needed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(
            json.dumps(span_record(span), separators=(",", ":")) + "\n" for span in spans
        )
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """The compact JSON form of a finished span."""
    context = span.get_span_context()
    assert context is not None
    return {
        "service": (span.resource.attributes.get("service.name") if span.resource else None),
        "name": span.name,
        "kind": span.kind.name.lower(),
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        # The status description quotes the exception's text: keep the code only.
        "status": span.status.status_code.name.lower(),
        "attributes": _plain(_safe_span_attributes(span.attributes)),
        "events": [
            {"name": event.name, "attributes": _plain(_safe_event_attributes(event.attributes))}
            for event in span.events
        ],
    }


def _safe_span_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        key: value
        for key, value in (attributes or {}).items()
        if key not in _UNSAFE_SPAN_ATTRIBUTES and not key.startswith("http.request.header.")
    }


def _safe_event_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        key: value
        for key, value in (attributes or {}).items()
        if key not in _UNSAFE_EVENT_ATTRIBUTES
    }


def safe_span(span: ReadableSpan) -> ReadableSpan:
    """The span as it may leave the process: no client-chosen attributes, no exception
    text, the status without its description."""
    return ReadableSpan(
        name=span.name,
        context=span.get_span_context(),
        parent=span.parent,
        resource=span.resource,
        attributes=_safe_span_attributes(span.attributes),
        events=[
            Event(event.name, _safe_event_attributes(event.attributes), event.timestamp)
            for event in span.events
        ],
        links=span.links,
        kind=span.kind,
        status=Status(span.status.status_code),
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class SafeSpanExporter(SpanExporter):
    """Another exporter (OTLP) fed only ``safe_span``s."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([safe_span(span) for span in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def otlp_requested(environ: Mapping[str, str]) -> bool:
    """Whether the standard variables ask for OTLP: ``OTEL_TRACES_EXPORTER`` names ``otlp``
    or, unset, an OTLP endpoint is given (``none`` or ``OTEL_SDK_DISABLED=true``: never)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    named = {
        name.strip().lower()
        for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",")
        if name.strip()
    }
    if named:
        return "otlp" in named
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def otlp_exporter(environ: Mapping[str, str]) -> SpanExporter:
    """OTLP over gRPC or HTTP/protobuf, as ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`` says; the
    exporter itself reads endpoint, headers, certificate and timeout from ``OTEL_*``."""
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    exporter: SpanExporter
    if protocol == "grpc":  # imported only when asked for: grpc is slow to import
        from opentelemetry.exporter.otlp.proto.grpc import trace_exporter as grpc

        exporter = grpc.OTLPSpanExporter()
    elif protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http import trace_exporter as http

        exporter = http.OTLPSpanExporter()
    else:
        raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: use grpc or http/protobuf")
    return SafeSpanExporter(exporter)


def _plain(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        key: (value.decode("utf-8", "replace") if isinstance(value, bytes) else value)
        if not isinstance(value, tuple)
        else list(value)
        for key, value in (attributes or {}).items()
    }


def make_tracer_provider(
    service: str, trace_dir: Path | None, environ: Mapping[str, str] | None = None
) -> TracerProvider:
    """A TracerProvider for ``service`` exporting to span files and/or OTLP (see above)."""
    environ = os.environ if environ is None else environ
    provider = TracerProvider(resource=Resource.create({"service.name": f"brug-{service}"}))
    if trace_dir is not None:
        exporter = JsonLinesSpanExporter(Path(trace_dir) / f"{service}.jsonl")
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
    if otlp_requested(environ):
        provider.add_span_processor(BatchSpanProcessor(otlp_exporter(environ)))
    return provider


def configure_tracing(service: str, trace_dir: Path | None) -> TracerProvider:
    """The process's TracerProvider, set once (OpenTelemetry refuses to replace it)."""
    global _configured
    with _lock:
        if _configured is None:
            provider = make_tracer_provider(service, trace_dir)
            trace.set_tracer_provider(provider)
            # Outgoing HTTP (webhooks, rest-hooks) as client spans of their trace; database
            # statements likewise, from each engine (adapters/database.py).
            trace_httpx()
            # Events wrapped while a span is current carry its trace context.
            cloudevents.set_traceparent_source(current_traceparent)
            _configured = provider
        return _configured


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, or None outside one."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def current_trace_id() -> str | None:
    """The current trace's id (32 hex digits), or None outside a span."""
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


def trace_headers() -> dict[str, str]:
    """Headers that continue the current trace in an outgoing HTTP request."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    traceparent: str | None = None,
    referral_id: object = None,
    event_id: object = None,
    attributes: Mapping[str, str | int] | None = None,
) -> Iterator[Span]:
    """A span, child of ``traceparent`` when given (work resumed from a stored CloudEvent,
    e.g. a queued webhook), else of the current span. The ids go on the span and, while it
    lasts, on every log line (unbound again after: loops handle item after item)."""
    ids = {
        key: str(value)
        for key, value in (("referral_id", referral_id), ("event_id", event_id))
        if value is not None
    }
    parent = propagate.extract({"traceparent": traceparent}) if traceparent else None
    span_attributes = {**(attributes or {}), **{f"brug.{k}": v for k, v in ids.items()}}
    with (
        tracer().start_as_current_span(
            name, context=parent, kind=kind, attributes=span_attributes
        ) as current,
        structlog.contextvars.bound_contextvars(**ids),
    ):
        yield current
