"""Spans reach an OpenTelemetry collector over OTLP when the standard OTEL_* variables ask
for it, over gRPC or HTTP/protobuf, with the same redaction as the span files. The
collector here is an in-process OTLP receiver on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.trace import SpanKind, Status, StatusCode

from adapters.runtime.tracing import make_tracer_provider, otlp_requested

Received = list[trace_service_pb2.ExportTraceServiceRequest]
PERSONAL = "Johanna de Vries 123456782"


@pytest.fixture
def http_receiver() -> Iterator[tuple[str, Received]]:
    received: Received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/v1/traces":
                received.append(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
            self.send_response(200 if self.path == "/v1/traces" else 404)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()
            self.wfile.write(trace_service_pb2.ExportTraceServiceResponse().SerializeToString())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def grpc_receiver() -> Iterator[tuple[str, Received]]:
    received: Received = []

    class Collector(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            received.append(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Collector(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"http://127.0.0.1:{port}", received
    server.stop(grace=None)


def _emit(service: str, trace_dir: Path | None = None) -> str:
    """One span with what must not leave the process; returns its trace id."""
    provider = make_tracer_provider(service, trace_dir)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span(
        "GET http",
        kind=SpanKind.SERVER,
        attributes={"url.query": f"name={PERSONAL}", "http.route": "/fhir/Task", "brug.x": 1},
    ) as span:
        span.record_exception(ValueError(PERSONAL))
        span.set_status(Status(StatusCode.ERROR, PERSONAL))
        trace_id = format(span.get_span_context().trace_id, "032x")
    assert provider.force_flush(10_000)
    provider.shutdown()
    return trace_id


def _spans(received: Received) -> list[tuple[str, Any]]:
    return [
        (
            next(a.value.string_value for a in rs.resource.attributes if a.key == "service.name"),
            span,
        )
        for request in received
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_spans_reach_the_collector_redacted(
    protocol: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint, received = request.getfixturevalue(
        "grpc_receiver" if protocol == "grpc" else "http_receiver"
    )
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
    trace_id = _emit("router")
    [(service, span)] = _spans(received)
    assert service == "brug-router"
    assert span.name == "GET http"
    assert span.trace_id.hex() == trace_id
    attributes = {a.key for a in span.attributes}
    assert attributes == {"http.route", "brug.x"}
    [event] = span.events
    keys = {a.key for a in event.attributes}
    assert "exception.type" in keys
    assert keys <= {"exception.type", "exception.escaped"}
    assert span.status.code == StatusCode.ERROR.value
    assert PERSONAL not in str(received)


def test_span_files_stay_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    trace_id = _emit("feedback", tmp_path)
    [record] = [json.loads(line) for line in (tmp_path / "feedback.jsonl").read_text().splitlines()]
    assert record["trace_id"] == trace_id
    assert "url.query" not in record["attributes"]
    assert PERSONAL not in json.dumps(record)


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console, otlp"}, True),
        (
            {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"},
            False,
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_the_standard_variables_choose_otlp(environ: dict[str, str], wanted: bool) -> None:
    assert otlp_requested(environ) is wanted


def test_an_unknown_protocol_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(ValueError, match="grpc or http/protobuf"):
        make_tracer_provider("router", None)
