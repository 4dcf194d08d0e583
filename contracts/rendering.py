"""Renders the published contract files from the models (pure; the CLI writes them)."""

from __future__ import annotations

import json

from contracts.cloudevents import CloudEvent
from contracts.details import ReferralDetails
from contracts.events import EVENT_TYPES
from contracts.examples import example_events

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _dump(document: object) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_contract_files() -> dict[str, str]:
    """File name (relative to ``contracts/schemas``) → content, for every event type."""
    files: dict[str, str] = {}
    examples = example_events()
    for event_data in EVENT_TYPES:
        schema = CloudEvent[event_data].model_json_schema()  # type: ignore[valid-type]
        schema["$schema"] = SCHEMA_DIALECT
        schema["$id"] = f"urn:brug:schema:{event_data.EVENT_TYPE}"
        schema["title"] = event_data.EVENT_TYPE
        schema["properties"]["type"] = {"const": event_data.EVENT_TYPE, "type": "string"}
        files[f"{event_data.EVENT_TYPE}.schema.json"] = _dump(schema)
        example = examples[event_data.EVENT_TYPE].model_dump(mode="json", exclude_none=True)
        files[f"{event_data.EVENT_TYPE}.example.json"] = _dump(example)
    details_schema = ReferralDetails.model_json_schema()
    details_schema["$schema"] = SCHEMA_DIALECT
    details_schema["$id"] = "urn:brug:schema:referral-details.v1"
    files["referral-details.v1.schema.json"] = _dump(details_schema)
    return files
