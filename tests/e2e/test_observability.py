"""Signals of the running services: every service's /metrics moves with a referral, one
referral is one trace across the services (and their log lines say so), and nothing
personal reaches logs, spans or metrics."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from deploy.devstack.stack import DevStack
from tests.e2e.conftest import (
    GP_AMSTERDAM,
    WELFARE_AMSTERDAM,
    new_bundle,
    referral_id_of,
    resource,
    task_of,
)
from tests.e2e.test_referral_path import case_entry
from tests.helpers import eventually

pytestmark = pytest.mark.integration

ORGANISATION = "dynamo-amsterdam"
Sample = tuple[str, dict[str, str], float]
T = TypeVar("T")


def scrape(url: str) -> list[Sample]:
    text = httpx.get(url, timeout=10).text
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum over the series of ``name`` whose labels include ``labels``."""
    return sum(
        v for n, ls, v in samples if n == name and all(ls.get(k) == w for k, w in labels.items())
    )


def json_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = []
    for line in path.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # e.g. a Python warning at start-up
    return lines


def spans(stack: DevStack, service: str) -> list[dict[str, Any]]:
    return json_lines(stack.trace_dir / f"{service}.jsonl")


def instances(stack: DevStack, service: str) -> list[str]:
    """``service`` and, on a stack with replicas (BRUG_E2E_REPLICAS), ``service-2``, ..."""
    return [
        name
        for name in stack.metrics_urls()
        if name == service
        or (name.startswith(f"{service}-") and name[len(service) + 1 :].isdigit())
    ]


def log_lines(stack: DevStack, service: str) -> list[dict[str, Any]]:
    """Every instance's lines: with replicas, either may have handled the referral."""
    return [
        line
        for name in instances(stack, service)
        for line in json_lines(stack.service_process(name).log_file)
    ]


@dataclass(frozen=True)
class Routed:
    referral_id: str
    before: dict[str, list[Sample]]
    case: dict[str, Any]


@pytest.fixture(scope="module")
def routed(stack: DevStack) -> Routed:
    """One referral submitted (no traceparent: the gateway starts the trace), routed and its
    details fetched by the case system; with every service's metrics from before."""
    before = {name: scrape(url) for name, url in stack.metrics_urls().items()}
    with httpx.Client(base_url=stack.fhir_base_url, timeout=30) as gp:
        gp.headers.update(_gp_headers())
        reply = gp.post("", json=new_bundle())
    assert reply.status_code == 201, reply.text
    referral_id = referral_id_of(task_of(reply))
    return Routed(referral_id, before, case_entry(stack, ORGANISATION, referral_id))


def _gp_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {GP_AMSTERDAM}", "Content-Type": "application/fhir+json"}


def test_every_service_serves_metrics_and_a_referral_moves_them(
    stack: DevStack, routed: Routed
) -> None:
    urls = stack.metrics_urls()

    def moved(service: str, metric: str, **labels: str) -> float | None:
        # Summed over the service's instances: with replicas, either may have done it.
        delta = sum(
            value(scrape(urls[name]), metric, **labels)
            - value(routed.before[name], metric, **labels)
            for name in instances(stack, service)
        )
        return delta if delta >= 1 else None

    eventually(
        lambda: moved(
            "router", "brug_messages_handled_total", type="nl.brug.referral.submitted.v1"
        ),
        "the router counted the submitted event",
    )
    assert moved("router", "brug_referral_end_to_end_seconds_count", stage="routed")
    assert moved(
        "router", "faststream_received_messages_total", handler="brug.referrals.submitted.v1"
    )
    # Every domain event leaves through the outbox: the relay publishes for both services.
    assert moved(
        "relay",
        "faststream_published_messages_total",
        destination=f"brug.social.referrals.{ORGANISATION}.v1",
    )
    assert moved("relay", "brug_outbox_published_total", type="nl.brug.referral.created.v1")
    # httpx joins the base URL "…/fhir" and "" as "/fhir/", a route of its own.
    assert any(
        moved("fhir_gateway", "brug_http_requests_total", method="POST", route=r, status="201")
        for r in ("/fhir", "/fhir/")
    )
    assert moved(
        "relay",
        "faststream_published_messages_total",
        destination="brug.referrals.submitted.v1",
    )
    assert moved(
        "social_gateway",
        "brug_http_requests_total",
        method="GET",
        route="/social/v1/referrals/{referral_id}",
        status="200",
    )
    for name, url in urls.items():
        samples = scrape(url)
        build = [labels for n, labels, v in samples if n == "brug_build_info" and v == 1]
        assert build, f"{name} has no brug_build_info"
        assert build[0]["version"]
        assert value(samples, "process_start_time_seconds") > 0, f"{name} has no start time"
        # No series is labelled with the referral's id.
        assert routed.referral_id not in httpx.get(url).text


def test_one_referral_is_one_trace_across_services_and_their_log_lines(
    stack: DevStack, routed: Routed
) -> None:
    rid = routed.referral_id

    def of_referral(service: str) -> list[dict[str, Any]]:
        return [s for s in spans(stack, service) if s["attributes"].get("brug.referral_id") == rid]

    trace_id = eventually(lambda: of_referral("fhir-gateway"), "the gateway's spans")[0]["trace_id"]
    http_in = [
        s
        for s in spans(stack, "fhir-gateway")
        if s["trace_id"] == trace_id and s["kind"] == "server"
    ]
    assert http_in[0]["name"] in {"POST /fhir", "POST /fhir/"}
    assert http_in[0]["parent_span_id"] is None, "no traceparent came in: a root span"
    routed_spans = eventually(lambda: of_referral("router"), "the router's span")
    assert {s["trace_id"] for s in routed_spans} == {trace_id}
    fetched = eventually(
        lambda: [
            s
            for s in spans(stack, "social-gateway")
            if s["trace_id"] == trace_id and s["kind"] == "server"
        ],
        "the details fetch in the same trace",
    )
    assert fetched[0]["name"] == "GET /social/v1/referrals/{referral_id}"
    assert routed.case["event"]["traceparent"].split("-")[1] == trace_id

    for service in ("fhir_gateway", "router", "social_gateway"):
        lines = eventually(
            lambda service=service: [
                line for line in log_lines(stack, service) if line.get("referral_id") == rid
            ],
            f"{service} logged the referral",
        )
        assert {line.get("trace_id") for line in lines} == {trace_id}, service
    routed_line = next(
        line
        for line in log_lines(stack, "router")
        if line.get("referral_id") == rid and line["event"] == "referral routed"
    )
    assert routed_line["event_id"], "the router's lines name the event they handle"


# Made up for this test only; none of it may show up in what the services write.
NAME_GIVEN, NAME_FAMILY = "Zwaantje", "Kwakkelstein"
BSN = "731586244"  # passes the elfproef
PHONE = "06-71829304"
EMAIL = "zwaantje.kwakkelstein@voorbeeld.example"
STREET = "Zwaluwstaartsteeg 77"
NOTE = "Wil graag naar de Blauwkoolvereniging Pimpernel"
REASON = "Mist de Kwispeldoorn-breiclub"
SUMMARY = "Gekoppeld aan het Snoezelkoor Tureluur"


def _bsn_forms(bsn: str) -> list[str]:
    return [
        bsn,
        f"{bsn[:3]}.{bsn[3:6]}.{bsn[6:]}",
        f"{bsn[:3]} {bsn[3:6]} {bsn[6:]}",
        f"{bsn[:4]} {bsn[4:6]} {bsn[6:]}",
        f"{bsn[:4]}.{bsn[4:6]}.{bsn[6:]}",
    ]


def _distinctive_bundle() -> dict[str, Any]:
    bundle = new_bundle()
    patient = resource(bundle, "Patient")
    patient["identifier"][0]["value"] = BSN
    patient["name"] = [
        {"use": "official", "family": NAME_FAMILY, "given": [NAME_GIVEN], "text": "Z. Kwakkelstein"}
    ]
    patient["telecom"] = [
        {"system": "phone", "value": PHONE, "use": "mobile"},
        {"system": "email", "value": EMAIL},
    ]
    patient["address"][0]["line"] = [STREET]
    request = resource(bundle, "ServiceRequest")
    request["note"] = [{"text": NOTE}]
    request["reasonCode"].append({"text": REASON})
    return bundle


def test_no_personal_data_reaches_logs_spans_or_metrics(
    stack: DevStack, gp: httpx.Client, social: httpx.Client
) -> None:
    reply = gp.post("", json=_distinctive_bundle())
    assert reply.status_code == 201, reply.text
    task = task_of(reply)
    rid = referral_id_of(task)
    details = case_entry(stack, ORGANISATION, rid)["details"]
    assert NAME_FAMILY in json.dumps(details), "the details did travel, to the case system only"

    social.headers["Authorization"] = f"Bearer {WELFARE_AMSTERDAM}"
    for sequence, status, extra in (
        (1, "accepted", {}),
        (2, "completed", {"outcome": {"summary": SUMMARY}}),
    ):
        body = {
            "status": status,
            "sequence": sequence,
            "occurred_at": datetime.now(UTC).isoformat(),
        }
        posted = social.post(f"/social/v1/referrals/{rid}/status", json=body | extra)
        assert posted.status_code == 202, posted.text
    eventually(
        lambda: gp.get(f"/Task/{task['id']}").json()["status"] == "completed",
        "the GP's Task completed",
    )
    assert SUMMARY in gp.get("/Communication", params={"based-on": f"ServiceRequest/{rid}"}).text
    eventually(
        lambda: any(
            s["attributes"].get("brug.referral_id") == rid for s in spans(stack, "feedback")
        ),
        "the feedback service's spans are written",
    )

    written = {
        str(path): path.read_text(errors="replace")
        for folder in (stack.config.state_dir / "logs", stack.trace_dir)
        for path in sorted(folder.iterdir())
    }
    written |= {url: httpx.get(url).text for url in stack.metrics_urls().values()}
    assert any(rid in text for text in written.values()), "the referral was logged (by id)"
    forbidden = [NAME_GIVEN, NAME_FAMILY, *_bsn_forms(BSN), PHONE, EMAIL, STREET, NOTE, REASON]
    forbidden += [SUMMARY, "Blauwkoolvereniging", "Kwispeldoorn", "Snoezelkoor", "71829304"]
    for where, text in written.items():
        for secret in forbidden:
            assert secret.lower() not in text.lower(), f"{secret!r} leaked into {where}"
