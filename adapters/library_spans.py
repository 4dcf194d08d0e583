"""Libraries' spans on Brug's traces: each database statement (SQLAlchemy over psycopg) and
each outgoing HTTP request (httpx) becomes a child span of the trace it runs in, so a
referral's trace shows its database and HTTP hops.

They join a trace and never start one: a poll outside any span (the relay's, the loops')
would otherwise make a new trace per statement, every second, in every replica. Statements
are recorded as SQLAlchemy sends them, with placeholders, never their parameters; URLs
(which may carry a query) are dropped by the exporters (``adapters/runtime/tracing.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.util.types import Attributes

_lock = threading.Lock()


class _ChildrenOnlyTracer(trace.Tracer):
    """A library's tracer whose spans exist only inside a trace (else a no-op span)."""

    def __init__(self, name: str, version: str | None, schema_url: str | None) -> None:
        self._args = (name, version, schema_url)

    def _inner(self) -> trace.Tracer:
        # Looked up per span: the process's provider may be set after instrumenting.
        name, version, schema_url = self._args
        return trace.get_tracer(name, version, schema_url=schema_url)

    def start_span(
        self, name: str, context: otel_context.Context | None = None, *args: Any, **kwargs: Any
    ) -> trace.Span:
        if not trace.get_current_span(context).get_span_context().is_valid:
            return trace.INVALID_SPAN
        return self._inner().start_span(name, context, *args, **kwargs)

    @contextmanager
    def start_as_current_span(  # type: ignore[override]
        self, name: str, context: otel_context.Context | None = None, *args: Any, **kwargs: Any
    ) -> Iterator[trace.Span]:
        if not trace.get_current_span(context).get_span_context().is_valid:
            yield trace.INVALID_SPAN
            return
        with self._inner().start_as_current_span(name, context, *args, **kwargs) as span:
            yield span


class ChildrenOnly(trace.TracerProvider):
    """The tracer provider handed to instrumentations."""

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> trace.Tracer:
        return _ChildrenOnlyTracer(
            instrumenting_module_name, instrumenting_library_version, schema_url
        )


def trace_sqlalchemy() -> None:
    """Every engine created after this traces its statements (idempotent). Call it before
    creating an engine: the instrumentation wraps SQLAlchemy's engine factories."""
    with _lock:
        instrumentor = SQLAlchemyInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            # It declares SQLAlchemy < 2.1; 2.1 keeps the event API it hooks into
            # (tests/integration/test_trace_hops.py checks the spans).
            instrumentor.instrument(tracer_provider=ChildrenOnly(), skip_dep_check=True)


def trace_httpx() -> None:
    """Every httpx request from now on, whatever its client, traces (idempotent)."""
    with _lock:
        instrumentor = HTTPXClientInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=ChildrenOnly())
