"""A referral's trace shows its database and HTTP hops: statements on the real PostgreSQL
(SQLAlchemy over psycopg) and outgoing httpx requests become child spans of the trace they
run in, and nothing outside a trace starts one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import text

from adapters.database import make_async_engine
from adapters.runtime.tracing import configure_tracing, span

pytestmark = pytest.mark.integration


@pytest.fixture
def finished() -> Iterator[InMemorySpanExporter]:
    """The spans this process finishes from now on (the process's provider, as a service's)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = configure_tracing("trace-hops-test", None)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # the processor stays on the provider, storing nothing


@pytest.fixture
def endpoint() -> Iterator[tuple[str, list[str]]]:
    """A loopback endpoint that records the traceparent each request carried."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.headers.get("traceparent", ""))
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", seen
    server.shutdown()
    server.server_close()


def _in(trace_id: int, spans: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
    return [s for s in spans if s.context is not None and s.context.trace_id == trace_id]


async def test_database_and_http_hops_join_the_referral_trace(
    database_url: str, finished: InMemorySpanExporter, endpoint: tuple[str, list[str]]
) -> None:
    url, seen = endpoint
    engine = make_async_engine(database_url)
    try:
        async with engine.connect() as connection:  # outside any trace: no span
            await connection.execute(text("SELECT 1"))
        with span("referral hop", referral_id="9b1e0000-0000-4000-8000-000000000001") as parent:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT count(*) FROM referrals"))
            async with httpx.AsyncClient(timeout=5.0) as client:
                response = await client.post(url, json={"id-only": True})
            trace_id = parent.get_span_context().trace_id
    finally:
        await engine.dispose()
    assert response.status_code == 204
    spans = finished.get_finished_spans()
    ours = _in(trace_id, spans)
    database = [s for s in ours if (s.attributes or {}).get("db.system") == "postgresql"]
    assert any("referrals" in str((s.attributes or {}).get("db.statement")) for s in database)
    assert all(s.kind is SpanKind.CLIENT for s in database)
    http = [s for s in ours if s.kind is SpanKind.CLIENT and s not in database]
    assert [s.name for s in http if "POST" in s.name], [s.name for s in ours]
    assert seen and f"{trace_id:032x}" in seen[0]  # the endpoint continues the same trace
    outside = [
        s for s in spans if s not in ours and "SELECT 1" in str((s.attributes or {}).values())
    ]
    assert outside == []
