"""The alerting rules operators load into Prometheus stay in step with the metrics the code
exports: every rule is complete, and every Brug series it queries is defined somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
HISTOGRAM_AND_COUNTER_SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def _defined_metric_names() -> set[str]:
    """Names given to prometheus_client metrics anywhere in adapters/ and services/."""
    pattern = re.compile(r'(?:Counter|Gauge|Histogram)\(\s*"(brug_[a-z0-9_]+)"', re.S)
    sources = [*ROOT.joinpath("adapters").rglob("*.py"), *ROOT.joinpath("services").rglob("*.py")]
    return {name for source in sources for name in pattern.findall(source.read_text())}


def _base_name(series: str) -> str:
    for suffix in HISTOGRAM_AND_COUNTER_SUFFIXES:
        if series.endswith(suffix):
            return series.removesuffix(suffix)
    return series


def test_every_alert_is_complete_and_queries_only_metrics_brug_exports() -> None:
    rules = [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]
    defined = _defined_metric_names()
    assert {"brug_consumer_lag", "brug_dead_letters_parked", "brug_dead_lettered"} <= defined
    for rule in rules:
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["console"], rule["alert"]
        queried = set(re.findall(r"\bbrug_[a-z0-9_]+", rule["expr"]))
        unknown = {series for series in queried if _base_name(series) not in defined}
        assert not unknown, f"{rule['alert']} queries {unknown}, which nothing exports"
    assert len({rule["alert"] for rule in rules}) == len(rules)
