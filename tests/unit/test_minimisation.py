"""Minimisation as an allow-list, checked with random Bundles: whatever medical detail a GP
system sends (Condition, reason codes and their text, Observations, MedicationStatements,
extensions), none of it reaches what the social side gets from the intake: the details,
``ReferralSubmitted`` and the router's ``ReferralCreated``.

Each example starts from the sample referral and seeds unique marker strings into those
places (inside random text), runs the real translation, the submission's details and event
builders and the routing decision, and looks for every marker in their JSON.

The same strategy (``marked_bundles``) drives the other two legs: through the real handlers
in-process, where the outbox, log lines, spans and ledger are searched too
(``tests/unit/handlers/test_minimisation_intake.py``), and through the running stack, where
the webhook bodies, every record on Brug's topics and the log and span files are
(``tests/e2e/test_minimisation.py``).
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.clients import Client, ClientKind
from adapters.directory import load_directory
from adapters.postcodes import load_postcode_table
from adapters.runtime.settings import ServiceSettings
from contracts.codes import SubmissionChannel, WorTheme
from contracts.fhir_systems import ICPC_1_NL, SNOMED_CT
from contracts.mappings import wor_theme_table
from deploy.demo import sample_bundle
from services.fhir_gateway.submission import Submissions, _as_row, _submitted_event
from services.fhir_gateway.translation import parse_bundle, read_referral
from services.router.routing import route

TODAY = date(2026, 11, 23)
SETTINGS = ServiceSettings()
POSTCODES = load_postcode_table(SETTINGS.postcode_table_path)
DIRECTORY = load_directory(SETTINGS.directory_path)
CLIENT = Client(
    client_id="his-amsterdam-centrum",
    kind=ClientKind.GP,
    organisation="01999001",
    name="HIS Amsterdam Centrum",
    token_sha256="0" * 64,
)
# Only the details and event builders are used: they touch no database.
SUBMISSIONS = Submissions(
    engine=cast(AsyncEngine, None),
    retention=timedelta(days=30),
    base_url="http://127.0.0.1:8080/fhir",
)
EXTENSION_URL = "http://example.org/fhir/StructureDefinition/"
MAPPED_CODES = [(ICPC_1_NL, "Z15"), (ICPC_1_NL, "P03"), (SNOMED_CT, "267076002")]
# Text a GP system might write around a marker: letters, digits, spaces, punctuation.
PROSE = st.text(st.characters(categories=["L", "N", "Zs", "P"]), max_size=12)


@dataclass
class Seeds:
    """The markers one Bundle carries, made unique per example."""

    markers: list[str] = field(default_factory=list)
    unmapped_reasons: int = 0

    def new(self, draw: st.DrawFn) -> str:
        marker = f"MRK{len(self.markers)}x{uuid.uuid4().hex[:10]}"
        self.markers.append(marker)
        return f"{draw(PROSE)} {marker} {draw(PROSE)}".strip()

    def code(self) -> str:
        """A marker fit for a FHIR code (no spaces)."""
        marker = f"MRK{len(self.markers)}c{uuid.uuid4().hex[:10]}"
        self.markers.append(marker)
        return marker


def _extension(draw: st.DrawFn, seeds: Seeds) -> dict[str, Any]:
    return {"url": EXTENSION_URL + seeds.code(), "valueString": seeds.new(draw)}


def _coding(draw: st.DrawFn, seeds: Seeds, *, mapped: bool) -> dict[str, Any]:
    if mapped:
        system, code = draw(st.sampled_from(MAPPED_CODES))
    else:
        system = draw(st.sampled_from([ICPC_1_NL, SNOMED_CT, "urn:oid:2.16.840.1.113883.6.90"]))
        code = seeds.code()
    coding = {"system": system, "code": code, "display": seeds.new(draw)}
    if draw(st.booleans()):
        coding["extension"] = [_extension(draw, seeds)]
    return coding


def _concept(draw: st.DrawFn, seeds: Seeds, *, mapped: bool) -> dict[str, Any]:
    concept: dict[str, Any] = {}
    if mapped or draw(st.booleans()):
        concept["coding"] = [_coding(draw, seeds, mapped=mapped)]
    if not concept or draw(st.booleans()):
        concept["text"] = seeds.new(draw)
    if draw(st.booleans()):
        concept["extension"] = [_extension(draw, seeds)]
    return concept


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    full_url = f"urn:uuid:{uuid.uuid4()}"
    request = {"method": "POST", "url": resource["resourceType"]}
    return {"fullUrl": full_url, "resource": resource, "request": request}


@st.composite
def marked_bundles(draw: st.DrawFn) -> tuple[dict[str, Any], Seeds]:
    bundle = sample_bundle(f"WOR-{uuid.uuid4()}")
    seeds = Seeds()
    entries = bundle["entry"]
    service_request = next(
        e["resource"] for e in entries if e["resource"]["resourceType"] == "ServiceRequest"
    )
    patient_url = next(e["fullUrl"] for e in entries if e["resource"]["resourceType"] == "Patient")
    patient = {"reference": patient_url}

    reasons = []
    for _ in range(draw(st.integers(0, 4))):
        mapped = draw(st.booleans())
        seeds.unmapped_reasons += not mapped
        reasons.append(_concept(draw, seeds, mapped=mapped))
    service_request["reasonCode"] = reasons

    conditions = []
    for _ in range(draw(st.integers(0, 3))):
        condition = {
            "resourceType": "Condition",
            "code": _concept(draw, seeds, mapped=draw(st.booleans())),
            "subject": patient,
            "note": [{"text": seeds.new(draw)}],
        }
        if draw(st.booleans()):
            condition["extension"] = [_extension(draw, seeds)]
        conditions.append(_entry(condition))
    service_request["reasonReference"] = [{"reference": e["fullUrl"]} for e in conditions]

    supporting = []
    for _ in range(draw(st.integers(0, 2))):
        observation = {
            "resourceType": "Observation",
            "status": "final",
            "code": _concept(draw, seeds, mapped=False),
            "subject": patient,
            "valueString": seeds.new(draw),
            "note": [{"text": seeds.new(draw)}],
        }
        supporting.append(_entry(observation))
    for _ in range(draw(st.integers(0, 2))):
        medication = {
            "resourceType": "MedicationStatement",
            "status": "active",
            "medicationCodeableConcept": _concept(draw, seeds, mapped=False),
            "subject": patient,
            "dosage": [{"text": seeds.new(draw)}],
        }
        supporting.append(_entry(medication))
    if supporting:
        service_request["supportingInfo"] = [{"reference": e["fullUrl"]} for e in supporting]

    # Extensions on the resources whose other parts do cross.
    for entry in entries:
        kind = entry["resource"]["resourceType"]
        if kind in {"ServiceRequest", "Patient", "Organization"} and draw(st.booleans()):
            entry["resource"]["extension"] = [_extension(draw, seeds)]
    order = draw(st.permutations([*conditions, *supporting]))
    bundle["entry"] = [*entries, *order]
    return bundle, seeds


def _crossing(bundle: dict[str, Any]) -> tuple[str, list[WorTheme]]:
    """Everything the intake hands to the social side, as JSON, and the themes."""
    intake = read_referral(
        parse_bundle(bundle),
        today=TODAY,
        postcodes=POSTCODES,
        directory=DIRECTORY,
        themes=wor_theme_table(),
    )
    new = SUBMISSIONS._new_referral(intake, CLIENT)
    submitted = _submitted_event(_as_row(new), None, intake, SubmissionChannel.FHIR_REST)
    created = route(
        submitted.data,
        DIRECTORY,
        details_base_url="http://127.0.0.1:8081/social/v1/referrals",
        now=datetime.now(UTC),
    )
    crossing = [
        new.details,
        new.themes,
        new.age_band,
        new.urgency,
        new.municipality_code,
        submitted.model_dump(mode="json"),
        created.model_dump(mode="json"),
    ]
    return json.dumps(crossing, ensure_ascii=False), intake.themes


@settings(max_examples=200, deadline=None)
@given(marked_bundles())
def test_no_seeded_marker_crosses_to_the_social_side(example: tuple[dict[str, Any], Seeds]) -> None:
    bundle, seeds = example
    sent = json.dumps(bundle, ensure_ascii=False)
    assert all(marker in sent for marker in seeds.markers), "every marker is in the Bundle"

    crossed, themes = _crossing(copy.deepcopy(bundle))

    leaked = [marker for marker in seeds.markers if marker in crossed]
    assert leaked == [], f"crossed to the social side: {leaked}"
    assert themes, "every referral has a theme"
    if seeds.unmapped_reasons:
        assert WorTheme.OTHER in themes, "an unmapped reason is theme other"


def test_the_question_crosses_as_the_gp_wrote_it() -> None:
    """The one free text that does cross: written by the GP for the coach."""
    bundle = sample_bundle("WOR-question")
    crossed, _ = _crossing(bundle)
    assert "Mevrouw is sinds het overlijden van haar man erg eenzaam" in crossed
    assert "Bel bij voorkeur 's ochtends" in crossed
