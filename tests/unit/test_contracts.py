"""The wire contracts: envelope rules, published files in sync, examples valid."""

from __future__ import annotations

import difflib
import json
import uuid
from datetime import UTC, datetime

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.codes import AgeBand, WorTheme
from contracts.events import EVENT_TYPES, ReferralCreated, ReferralSubmitted
from contracts.examples import example_events
from deploy.contract_files import expected_files


def _submitted() -> ReferralSubmitted:
    return ReferralSubmitted(
        referral_id=uuid.uuid4(),
        municipality_code="GM0363",
        themes=[WorTheme.LONELINESS],
        age_band=AgeBand.FROM_75,
        submitted_at=datetime.now(UTC),
    )


def test_an_envelope_round_trips_through_json() -> None:
    event = CloudEvent[ReferralSubmitted].wrap(_submitted(), service="gp-edge")
    parsed = CloudEvent[ReferralSubmitted].model_validate_json(event.to_json_bytes())
    assert parsed == event
    assert parsed.source == "urn:brug:service:gp-edge"
    assert parsed.subject == str(event.data.referral_id)
    assert parsed.type == "nl.brug.referral.submitted.v1"


def test_an_envelope_whose_type_disagrees_with_its_data_is_rejected() -> None:
    document = json.loads(
        CloudEvent[ReferralSubmitted].wrap(_submitted(), service="x").to_json_bytes()
    )
    document["type"] = "nl.brug.referral.created.v1"
    with pytest.raises(ValidationError, match="does not match the data"):
        CloudEvent[ReferralSubmitted].model_validate(document)


def test_unknown_extension_attributes_from_other_producers_are_kept() -> None:
    document = json.loads(
        CloudEvent[ReferralSubmitted].wrap(_submitted(), service="x").to_json_bytes()
    )
    document["partitionkey"] = "abc"
    assert CloudEvent[ReferralSubmitted].model_validate(document).extensions() == {
        "partitionkey": "abc"
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [("municipality_code", "0363"), ("themes", []), ("age_band", "70-80"), ("urgency", "stat")],
)
def test_referral_payloads_reject_values_outside_the_code_lists(field: str, value: object) -> None:
    fields = _submitted().model_dump() | {field: value}
    with pytest.raises(ValidationError):
        ReferralSubmitted.model_validate(fields)


def test_referral_events_have_no_field_for_personal_data() -> None:
    """Notified pull: names, contact details, BSN and free text never travel on Kafka."""
    forbidden = {
        "name",
        "bsn",
        "address",
        "phone",
        "email",
        "telecom",
        "birth_date",
        "note",
        "text",
    }
    for event_type in (ReferralSubmitted, ReferralCreated):
        assert forbidden.isdisjoint(event_type.model_fields), event_type.__name__


def test_published_schema_examples_and_asyncapi_files_match_the_models() -> None:
    stale = {
        str(path): "".join(
            difflib.unified_diff(
                path.read_text().splitlines(True) if path.exists() else [],
                text.splitlines(True),
                n=1,
            )
        )[:2000]
        for path, text in expected_files().items()
        if not path.exists() or path.read_text() != text
    }
    assert stale == {}, "run `brug contracts generate` and commit the result"


@pytest.mark.parametrize("event_type", [t.EVENT_TYPE for t in EVENT_TYPES])
def test_each_example_validates_against_its_published_schema(event_type: str) -> None:
    files = {path.name: text for path, text in expected_files().items()}
    schema = json.loads(files[f"{event_type}.schema.json"])
    example = json.loads(files[f"{event_type}.example.json"])
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(
        example
    )
    assert example == example_events()[event_type].model_dump(mode="json", exclude_none=True)


def test_the_schema_pins_the_event_type() -> None:
    schema = json.loads(
        {p.name: t for p, t in expected_files().items()}["nl.brug.referral.created.v1.schema.json"]
    )
    example = json.loads(
        {p.name: t for p, t in expected_files().items()}["nl.brug.referral.created.v1.example.json"]
    )
    example["type"] = "nl.brug.referral.submitted.v1"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(example, schema)


@given(st.integers(min_value=0, max_value=120))
def test_every_age_falls_in_exactly_the_band_that_contains_it(age: int) -> None:
    band = AgeBand.for_age(age)
    low, _, high = band.value.replace("+", "-").partition("-")
    assert int(low) <= age
    assert not high or age <= int(high)


def test_organisation_ids_are_checked_before_they_become_topic_names() -> None:
    assert (
        topics.social_referrals("welzijn-lelystad") == "brug.social.referrals.welzijn-lelystad.v1"
    )
    with pytest.raises(ValueError, match="organisation id"):
        topics.social_referrals("Welzijn Lelystad")
    with pytest.raises(ValueError, match="organisation id"):
        topics.social_status("../x")
