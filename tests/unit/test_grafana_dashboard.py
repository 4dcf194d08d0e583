"""deploy/grafana/brug.json: every panel queries metrics the code exports (their names as
Prometheus scrapes them), and it shows flows, latency, lag, dead letters, webhooks and
rest-hooks."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from prometheus_client import REGISTRY

import adapters.outbox.relay
import adapters.runtime.metrics
import services.console.gauges
from deploy.devstack.paths import DEPLOY_DIR

DASHBOARD = json.loads((DEPLOY_DIR / "grafana" / "brug.json").read_text())
# Each module declares its metrics at import (registering is no I/O).
DECLARING = (adapters.runtime.metrics, adapters.outbox.relay, services.console.gauges)
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}
PROMQL_WORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
    | {"and", "or", "unless", "inf", "nan"}
)


def exported() -> set[str]:
    """The series names /metrics can show, from the process's registry."""
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        for suffix in SAMPLE_SUFFIXES.get(family.type, ("",))
    }


def metrics_in(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not its functions, labels or words)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set(re.findall(r"(?<![\w$])([a-zA-Z_:][\w:]*)\b(?!\s*\()", text))
    return {name for name in names if name.lower() not in PROMQL_WORDS}


def _panels(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for item in items:
        if item.get("type") == "row":
            found += _panels(item.get("panels", []))
        else:
            found.append(item)
    return found


PANELS = _panels(DASHBOARD["panels"])


def test_the_parser_finds_metrics_and_only_metrics() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, stage) (rate(brug_x_bucket{stage="routed"}[5m])))'
        " / on (stage) group_left sum(up) > bool 5"
    )
    assert metrics_in(expr) == {"brug_x_bucket", "up"}
    assert "brug_referral_end_to_end_seconds_bucket" in exported()
    assert "brug_nope_total" not in exported()


@pytest.mark.parametrize("panel", PANELS, ids=[p["title"] for p in PANELS])
def test_every_panel_queries_exported_metrics(panel: dict[str, Any]) -> None:
    assert panel["targets"], "a panel without a query"
    for target in panel["targets"]:
        named = metrics_in(target["expr"])
        assert named, target["expr"]
        assert named <= exported(), f"not exported: {named - exported()} in {target['expr']}"


def test_the_service_variable_lists_an_exported_metric() -> None:
    [service] = [v for v in DASHBOARD["templating"]["list"] if v["name"] == "service"]
    metric = re.fullmatch(r"label_values\((\w+), service\)", service["definition"])
    assert metric and metric.group(1) in exported()


def test_it_shows_what_operators_watch() -> None:
    rows = [item["title"] for item in DASHBOARD["panels"] if item.get("type") == "row"]
    assert rows == ["Flows", "Latency", "Lag", "Dead letters", "Webhooks and rest-hooks"]
    queried = set().union(*(metrics_in(t["expr"]) for p in PANELS for t in p["targets"]))
    for metric in (
        "brug_messages_handled_total",
        "brug_referral_end_to_end_seconds_bucket",
        "brug_consumer_lag",
        "brug_dead_letters_parked",
        "brug_webhook_attempts_total",
        "brug_notifications_total",
    ):
        assert metric in queried, metric
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
