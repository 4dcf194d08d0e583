"""The dataset contract's published files, rendered from ``MonitorRecord``: its JSON Schema
(the JSON export) and a Frictionless Data Package whose Table Schema describes the CSV.
``brug contracts generate`` writes them; ``tests/unit/test_monitor_contract.py`` fails when
they, the record and the projection drift apart."""

from __future__ import annotations

import json
import types
import typing
from datetime import date
from enum import StrEnum
from typing import Any

from pydantic.fields import FieldInfo

from contracts.monitor import DATASET_NAME, DATASET_VERSION, LIST_FIELDS, MonitorRecord

SCHEMA_FILE = "dataset.schema.json"
DATAPACKAGE_FILE = "datapackage.json"
CSV_FILE = "referrals.csv"
LIST_SEPARATOR = ";"
SCHEMA_ID = f"urn:brug:monitor:{DATASET_NAME}:{DATASET_VERSION}"


def json_schema() -> dict[str, Any]:
    schema = MonitorRecord.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "version": DATASET_VERSION,
        **schema,
    }


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """The field's type without ``None``, and whether it may be empty."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return args[0], True
    return annotation, False


def _table_field(name: str, info: FieldInfo) -> dict[str, Any]:
    annotation, optional = _base_type(info.annotation)
    description = info.description or ""
    field: dict[str, Any] = {"name": name, "description": description}
    constraints: dict[str, Any] = {}
    if name in LIST_FIELDS:
        (item,) = typing.get_args(annotation)
        values = "|".join(sorted(member.value for member in item))
        field["type"] = "string"
        field["description"] = f"{description} Several values are separated by '{LIST_SEPARATOR}'."
        constraints["pattern"] = f"(({values})({LIST_SEPARATOR}({values}))*)?"
    elif isinstance(annotation, type) and issubclass(annotation, StrEnum):
        field["type"] = "string"
        constraints["enum"] = [member.value for member in annotation]
    elif annotation is bool:
        field["type"] = "boolean"
        field["trueValues"], field["falseValues"] = ["true"], ["false"]
    elif annotation is int:
        field["type"] = "integer"
    elif annotation is date:
        field["type"] = "date"
        field["format"] = "default"
    else:
        field["type"] = "string"
    for metadata in info.metadata:
        for attribute, key in (("ge", "minimum"), ("le", "maximum"), ("pattern", "pattern")):
            value = getattr(metadata, attribute, None)
            if value is not None:
                constraints[key] = value.strip("^$") if key == "pattern" else value
    if not optional and name not in LIST_FIELDS and info.is_required():
        constraints["required"] = True
    if constraints:
        field["constraints"] = constraints
    return field


def table_schema() -> dict[str, Any]:
    return {
        "fields": [_table_field(name, info) for name, info in MonitorRecord.model_fields.items()],
        "primaryKey": ["pseudonym"],
        "missingValues": [""],
    }


def datapackage() -> dict[str, Any]:
    return {
        "profile": "tabular-data-package",
        "name": DATASET_NAME,
        "version": DATASET_VERSION,
        "title": "Brug monitor: the minimal dataset of Welzijn op Recept referrals",
        "description": "One pseudonymous row per referral: origin, who and why, milestones, "
        "outcome and feedback to the GP. No names, BSN, free text, dates of birth or "
        "postcodes. Published only aggregated, after disclosure control (docs/MONITOR.md).",
        "licenses": [{"name": "CC-BY-4.0", "path": "https://creativecommons.org/licenses/by/4.0/"}],
        "resources": [
            {
                "name": "referrals",
                "path": CSV_FILE,
                "profile": "tabular-data-resource",
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "schema": table_schema(),
            }
        ],
    }


def render_monitor_contract() -> dict[str, str]:
    """File name (in ``contracts/monitor/``) → text."""
    return {
        SCHEMA_FILE: json.dumps(json_schema(), indent=2, sort_keys=True) + "\n",
        DATAPACKAGE_FILE: json.dumps(datapackage(), indent=2) + "\n",
    }


def csv_value(record: MonitorRecord, name: str) -> str:
    """One cell of the CSV as the Table Schema describes it."""
    value = getattr(record, name)
    if name in LIST_FIELDS:
        return LIST_SEPARATOR.join(str(item) for item in value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
