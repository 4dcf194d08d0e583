"""The monitor's dataset contract (``contracts/monitor``) against the projection and the
export: every field is one the projection fills, the JSON export validates against the
published JSON Schema, every CSV cell against the Table Schema of ``datapackage.json``,
and no field is an identity."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, date, datetime
from typing import Any

import jsonschema
import pytest

from adapters.monitor.export import csv_text, json_text
from adapters.monitor.projection import read
from contracts.monitor import FIELDS, MonitorRecord
from contracts.monitor.rendering import DATAPACKAGE_FILE, SCHEMA_FILE
from deploy.contract_files import MONITOR_DIR
from domain.monitor.dataset import MonitorState, project
from tests.monitor_story import told

KEY = "test-monitor-key"
START = datetime(2026, 10, 30, 22, 30, tzinfo=UTC)
# Fields that stay at their default in every story, and why that is all right.
UNFILLED = {"overdue_received": "no story has the receipt timer run out"}


def _fold(records: list[tuple[str, Any]], pseudonym: str) -> MonitorRecord:
    state = MonitorState(pseudonym)
    for topic, event in records:
        found = read(topic, event.to_json_bytes())
        assert isinstance(found, tuple), (topic, found)
        state = project(state, found[1])
    return state.record()


@pytest.fixture(scope="module")
def records() -> list[MonitorRecord]:
    folded = []
    for story, expected in told("dynamo-amsterdam", "GM0363", START, KEY):
        record = _fold(story.records, expected.pseudonym)
        assert record == expected
        folded.append(record)
    return folded


def test_the_projection_fills_every_field_of_the_contract(records: list[MonitorRecord]) -> None:
    defaults = MonitorRecord(pseudonym="0" * 64, referral_month="2026-01")
    for name in FIELDS:
        filled = any(getattr(r, name) != getattr(defaults, name) for r in records)
        assert filled or name in UNFILLED, f"no story fills {name}: does the projection?"


def test_no_field_is_an_identity() -> None:
    identity = re.compile(
        r"name|bsn|birth|postcode|postal|address|phone|mail|text|descr|summary|agb|referral_id|task"
    )
    assert [name for name in FIELDS if identity.search(name)] == []


def test_the_json_export_validates_against_the_published_schema(
    records: list[MonitorRecord],
) -> None:
    schema = json.loads((MONITOR_DIR / SCHEMA_FILE).read_text())
    exported = json.loads(json_text(records, "2026-Q4"))
    assert exported["version"] == schema["version"]
    for item in exported["records"]:
        jsonschema.Draft202012Validator(schema).validate(item)
    assert [MonitorRecord.model_validate(item) for item in exported["records"]] == sorted(
        records, key=lambda r: (r.referral_month, r.pseudonym)
    )


def test_every_csv_cell_satisfies_the_table_schema(records: list[MonitorRecord]) -> None:
    package = json.loads((MONITOR_DIR / DATAPACKAGE_FILE).read_text())
    fields = package["resources"][0]["schema"]["fields"]
    rows = list(csv.DictReader(io.StringIO(csv_text(records))))
    assert [field["name"] for field in fields] == list(FIELDS) == list(rows[0])
    for row in rows:
        for field in fields:
            _check_cell(field, row[field["name"]])


def _check_cell(field: dict[str, Any], cell: str) -> None:
    constraints = field.get("constraints", {})
    where = f"{field['name']}={cell!r}"
    if cell == "":
        assert not constraints.get("required"), where
        return
    if field["type"] == "date":
        date.fromisoformat(cell)
    elif field["type"] == "integer":
        value = int(cell)
        assert constraints.get("minimum", value) <= value <= constraints.get("maximum", value)
    elif field["type"] == "boolean":
        assert cell in field["trueValues"] + field["falseValues"], where
    if "enum" in constraints:
        assert cell in constraints["enum"], where
    if "pattern" in constraints:
        assert re.fullmatch(constraints["pattern"], cell), where
