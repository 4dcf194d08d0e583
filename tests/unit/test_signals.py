"""The signals' own logic: trace ids on log lines, the span file, ids and labels taken from
records, route templates, and that nothing personal slips into any of them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from prometheus_client import REGISTRY

from adapters.runtime.http import instrument_http
from adapters.runtime.kafka import record_ids
from adapters.runtime.logging import _shared_processors, add_trace_ids
from adapters.runtime.metrics import event_type_label
from adapters.runtime.tracing import (
    JsonLinesSpanExporter,
    configure_tracing,
    current_traceparent,
    span,
)
from contracts.cloudevents import TRACEPARENT_PATTERN, CloudEvent
from contracts.events import ReferralSubmitted

REFERRAL = uuid.UUID("5f0c6a1e-8b8e-4c7e-9d59-3a7e2b1c4d10")


@pytest.fixture(scope="module", autouse=True)
def _tracing() -> None:
    configure_tracing("unit-tests", None)  # no-op exporter; ids still exist


def test_log_lines_inside_a_span_carry_its_trace_and_span_id() -> None:
    with span("work") as current:
        event = add_trace_ids(None, "info", {"event": "hello"})
    context = current.get_span_context()
    assert event["trace_id"] == format(context.trace_id, "032x")
    assert event["span_id"] == format(context.span_id, "016x")
    assert "trace_id" not in add_trace_ids(None, "info", {"event": "outside"})


def test_trace_ids_are_added_after_redaction_so_digits_in_them_are_never_masked() -> None:
    processors = _shared_processors()
    assert processors.index(add_trace_ids) == len(processors) - 1


def test_span_ids_are_bound_to_log_lines_only_while_the_span_lasts() -> None:
    import structlog

    with span("delivery", referral_id=REFERRAL, event_id="evt-1"):
        bound = structlog.contextvars.get_contextvars()
        assert bound["referral_id"] == str(REFERRAL)
        assert bound["event_id"] == "evt-1"
    assert "referral_id" not in structlog.contextvars.get_contextvars()


def test_a_wrapped_event_carries_the_current_span_unless_given_one() -> None:
    submitted = ReferralSubmitted.model_validate(
        {
            "referral_id": str(REFERRAL),
            "municipality_code": "GM0363",
            "themes": ["loneliness"],
            "age_band": "75-84",
            "urgency": "routine",
            "submitted_at": "2025-01-01T10:00:00Z",
        }
    )
    with span("submit"):
        traceparent = current_traceparent()
        event = CloudEvent[ReferralSubmitted].wrap(submitted, service="test")
        given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        explicit = CloudEvent[ReferralSubmitted].wrap(submitted, service="test", traceparent=given)
    assert traceparent is not None
    assert event.traceparent == traceparent
    assert explicit.traceparent == given
    import re

    assert re.match(TRACEPARENT_PATTERN, traceparent)


def test_the_span_file_has_one_compact_line_per_span_and_no_exception_text(
    tmp_path: Path,
) -> None:
    path = tmp_path / "svc.jsonl"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    tracer = provider.get_tracer("test")
    with (
        pytest.raises(ValueError),
        tracer.start_as_current_span(
            "parent", attributes={"brug.referral_id": "r-1", "url.query": "bsn=111222333"}
        ),
        tracer.start_as_current_span("child"),
    ):
        raise ValueError("patient Zwaantje Kwakkelstein, BSN 111222333")
    provider.shutdown()

    text = path.read_text()
    assert "Zwaantje" not in text
    assert "111222333" not in text
    child, parent = (json.loads(line) for line in text.splitlines())
    assert child["name"] == "child"
    assert child["trace_id"] == parent["trace_id"]
    assert len(child["trace_id"]) == 32
    assert child["parent_span_id"] == parent["span_id"]
    assert parent["parent_span_id"] is None
    assert parent["attributes"] == {"brug.referral_id": "r-1"}
    assert child["status"] == "error"
    assert child["events"][0]["attributes"]["exception.type"] == "ValueError"


def test_ids_are_taken_from_cloudevents_only_and_only_when_they_look_like_ids() -> None:
    event = {"specversion": "1.0", "id": "abc-123", "data": {"referral_id": str(REFERRAL)}}
    assert record_ids(event) == (str(REFERRAL), "abc-123")
    by_subject = {"specversion": "1.0", "id": "x", "subject": str(REFERRAL), "data": {}}
    assert record_ids(by_subject) == (str(REFERRAL), "x")
    odd = {"specversion": "1.0", "id": "Zwaantje Kwakkelstein", "subject": "Zwaantje"}
    assert record_ids(odd) == (None, None)
    assert record_ids({"resourceType": "Bundle", "id": "b1"}) == (None, None)
    assert record_ids(b"not json") == (None, None)


def test_the_type_label_is_a_brug_event_type_or_other() -> None:
    assert event_type_label({"type": "nl.brug.referral.submitted.v1"}) == (
        "nl.brug.referral.submitted.v1"
    )
    assert event_type_label({"type": "Zwaantje Kwakkelstein"}) == "other"
    assert event_type_label({"resourceType": "Bundle"}) == "other"
    assert event_type_label(None) == "other"


async def test_http_requests_are_counted_by_route_template_and_continue_the_callers_trace() -> None:
    app = FastAPI()
    instrument_http(app, "unit-edge")
    seen: dict[str, str | None] = {}

    @app.get("/things/{referral_id}")
    async def thing(referral_id: str) -> dict[str, str]:
        import structlog

        seen["traceparent"] = current_traceparent()
        seen["referral_id"] = structlog.contextvars.get_contextvars().get("referral_id")
        return {}

    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    labels = {"service": "unit-edge", "method": "GET", "route": "/things/{referral_id}"}
    before = REGISTRY.get_sample_value("brug_http_requests_total", {**labels, "status": "200"})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
        assert (
            await client.get(f"/things/{REFERRAL}", headers={"traceparent": caller})
        ).status_code == 200
        assert (await client.get("/nowhere/Zwaantje")).status_code == 404

    after = REGISTRY.get_sample_value("brug_http_requests_total", {**labels, "status": "200"})
    assert (after or 0) - (before or 0) == 1
    unmatched = {"service": "unit-edge", "method": "GET", "route": "unmatched", "status": "404"}
    assert REGISTRY.get_sample_value("brug_http_requests_total", unmatched) == 1
    assert seen["traceparent"] is not None
    assert seen["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    assert seen["referral_id"] == str(REFERRAL)
