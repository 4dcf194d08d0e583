"""From a FHIR referral to the minimised intake: the privacy boundary and its rules."""

from __future__ import annotations

import copy
import json
from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.directory import load_directory
from adapters.fhir.outcomes import FhirProblem
from adapters.postcodes import load_postcode_table
from adapters.runtime.settings import ServiceSettings
from contracts.codes import AgeBand, ReferrerDiscipline, Urgency, WorTheme
from contracts.fhir_systems import ICPC_1_NL, REFERRER_DISCIPLINE, SNOMED_CT
from contracts.mappings import wor_theme_table
from deploy.demo import sample_bundle
from services.fhir_gateway.bsn import is_valid_bsn
from services.fhir_gateway.translation import Intake, parse_bundle, read_referral

TODAY = date(2026, 11, 23)
SETTINGS = ServiceSettings()
POSTCODES = load_postcode_table(SETTINGS.postcode_table_path)
DIRECTORY = load_directory(SETTINGS.directory_path)


def _read(bundle: dict[str, Any], today: date = TODAY) -> Intake:
    return read_referral(
        parse_bundle(bundle),
        today=today,
        postcodes=POSTCODES,
        directory=DIRECTORY,
        themes=wor_theme_table(),
    )


def _resource(bundle: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind)


def test_the_sample_referral_translates_to_what_the_coach_needs() -> None:
    intake = _read(sample_bundle("WOR-1"))
    assert intake.organisation_id == "dynamo-amsterdam"
    assert intake.municipality_code == "GM0363"
    # The free-text reason and the Condition's P76 map to nothing: theme other, no words.
    assert intake.themes == [WorTheme.LONELINESS, WorTheme.GRIEF_LOSS, WorTheme.OTHER]
    assert intake.urgency is Urgency.ROUTINE
    assert intake.requester_agb == "01999001"
    assert (intake.service_request_value, intake.if_none_exist is not None) == ("WOR-1", True)
    assert intake.person.display_name == "Johanna de Vries-Bakker"
    assert (intake.person.birth_year, intake.person.age) == (1946, 80)
    assert intake.person.age_band is AgeBand.FROM_75
    assert intake.referrer.name == "dr. P. Jansen"
    assert intake.referrer.organisation_name == "Huisartsenpraktijk Centrum"
    assert intake.referrer.phone == ["020-1234567"]


def test_nothing_medical_or_the_bsn_survives_translation() -> None:
    intake = _read(sample_bundle("WOR-1"))
    kept = json.dumps(
        [
            intake.person.model_dump(mode="json"),
            intake.referrer.model_dump(mode="json"),
            intake.question,
        ]
    )
    for medical in ("999993653", "Depressieve", "Sertraline", "P76", "Depressie", "zingeving"):
        assert medical not in kept


def test_a_condition_contributes_its_theme_but_not_its_text() -> None:
    bundle = sample_bundle("WOR-1")
    _resource(bundle, "Condition")["code"]["coding"] = [
        {"system": ICPC_1_NL, "code": "Z01.02", "display": "Schulden"}
    ]
    intake = _read(bundle)
    assert WorTheme.FINANCES in intake.themes
    assert "Schulden" not in json.dumps(intake.person.model_dump(mode="json"))


@pytest.mark.parametrize(
    "reason",
    [
        {"coding": [{"system": ICPC_1_NL, "code": "P76", "display": "Depressie"}]},
        {
            "coding": [
                {"system": SNOMED_CT, "code": "44054006", "display": "Diabetes mellitus type 2"}
            ]
        },
        {"text": "Angststoornis met paniekaanvallen"},
    ],
)
def test_an_unmapped_reason_is_theme_other_without_its_code_or_words(
    reason: dict[str, Any],
) -> None:
    bundle = sample_bundle("WOR-1")
    service_request = _resource(bundle, "ServiceRequest")
    service_request["reasonCode"] = [reason]
    service_request.pop("reasonReference")
    intake = _read(bundle)
    assert intake.themes == [WorTheme.OTHER]
    kept = json.dumps([intake.person.model_dump(mode="json"), intake.question, intake.themes])
    for word in ("P76", "Depressie", "44054006", "Diabetes", "Angststoornis"):
        assert word not in kept


@pytest.mark.parametrize(
    ("system", "code", "theme"),
    [
        (ICPC_1_NL, "Z15", WorTheme.GRIEF_LOSS),
        (ICPC_1_NL, "Z23.01", WorTheme.GRIEF_LOSS),
        (SNOMED_CT, "422650009", WorTheme.LONELINESS),
        (ICPC_1_NL, "P03", WorTheme.LOW_MOOD),
        (ICPC_1_NL, "Z22", WorTheme.CARER_STRAIN),
    ],
)
def test_the_versioned_table_maps_codes_to_themes(system: str, code: str, theme: WorTheme) -> None:
    assert wor_theme_table().theme_for(system, code) is theme
    assert wor_theme_table().version == "wor-themes.v2"


def test_the_current_home_address_decides_the_municipality_not_the_city_text() -> None:
    bundle = sample_bundle("WOR-1")
    _resource(bundle, "Patient")["address"] = [
        {"use": "old", "line": ["Oude Gracht 1"], "postalCode": "3511 AA"},
        {"use": "work", "line": ["Stationsplein 1"], "postalCode": "8232 AA"},
        {"use": "home", "line": ["Dorpsstraat 2"], "postalCode": "8211AB", "city": "Amsterdam"},
    ]
    intake = _read(bundle)
    assert (intake.municipality_code, intake.organisation_id) == ("GM0995", "welzijn-lelystad")


def test_an_expired_consent_is_refused_with_where() -> None:
    bundle = sample_bundle("WOR-1")
    _resource(bundle, "Consent")["provision"]["period"]["end"] = "2026-11-01"
    with pytest.raises(FhirProblem) as refused:
        _read(bundle)
    assert (refused.value.status, refused.value.code) == (422, "business-rule")
    assert refused.value.expression is not None
    assert refused.value.expression.endswith("provision.period.end")


def test_a_consent_for_someone_else_does_not_count() -> None:
    bundle = sample_bundle("WOR-1")
    _resource(bundle, "Consent")["patient"] = {"reference": "Patient/someone-else"}
    with pytest.raises(FhirProblem, match="no Consent for this Patient"):
        _read(bundle)


def test_a_birthday_not_yet_reached_this_year_is_not_counted() -> None:
    bundle = sample_bundle("WOR-1")
    _resource(bundle, "Patient")["birthDate"] = "1946-12-01"
    assert _read(bundle).person.age == 79


def test_priority_stat_is_treated_as_asap() -> None:
    bundle = sample_bundle("WOR-1")
    _resource(bundle, "ServiceRequest")["priority"] = "stat"
    assert _read(bundle).urgency is Urgency.ASAP


def test_the_requester_needs_an_agb_code() -> None:
    bundle = copy.deepcopy(sample_bundle("WOR-1"))
    _resource(bundle, "Organization")["identifier"] = []
    with pytest.raises(FhirProblem, match="AGB"):
        _read(bundle)


AGB_SPECIALISM = "urn:oid:2.16.840.1.113883.2.4.6.7"


@pytest.mark.parametrize(
    ("element", "system", "code", "discipline"),
    [
        ("code", SNOMED_CT, "62247001", ReferrerDiscipline.GP),
        ("specialty", AGB_SPECIALISM, "0100", ReferrerDiscipline.GP),
        ("code", REFERRER_DISCIPLINE, "poh-ggz", ReferrerDiscipline.POH_GGZ),
        ("code", REFERRER_DISCIPLINE, "poh-s", ReferrerDiscipline.POH_S),
        ("code", SNOMED_CT, "36682004", ReferrerDiscipline.OTHER),  # physiotherapist: unmapped
    ],
)
def test_the_referrer_discipline_comes_from_the_practitioner_role(
    element: str, system: str, code: str, discipline: ReferrerDiscipline
) -> None:
    bundle = copy.deepcopy(sample_bundle("WOR-1"))
    _resource(bundle, "PractitionerRole")[element] = [
        {"coding": [{"system": system, "code": code, "display": "Jansen, de eigen huisarts"}]}
    ]
    intake = _read(bundle)
    assert intake.referrer_discipline is discipline
    assert "Jansen, de eigen" not in json.dumps(intake.referrer.model_dump(mode="json"))


def test_a_referrer_without_a_coded_role_is_of_unknown_discipline() -> None:
    assert _read(sample_bundle("WOR-1")).referrer_discipline is ReferrerDiscipline.UNKNOWN
    bundle = copy.deepcopy(sample_bundle("WOR-1"))
    _resource(bundle, "PractitionerRole")["code"] = [{"text": "huisarts"}]
    assert _read(bundle).referrer_discipline is ReferrerDiscipline.UNKNOWN


def test_the_role_code_wins_over_its_specialty() -> None:
    bundle = copy.deepcopy(sample_bundle("WOR-1"))
    role = _resource(bundle, "PractitionerRole")
    role["code"] = [{"coding": [{"system": REFERRER_DISCIPLINE, "code": "poh-ggz"}]}]
    role["specialty"] = [{"coding": [{"system": AGB_SPECIALISM, "code": "0100"}]}]
    assert _read(bundle).referrer_discipline is ReferrerDiscipline.POH_GGZ


@pytest.mark.parametrize("bsn", ["999993653", "111222333", "123456782"])
def test_elfproef_accepts_valid_bsns(bsn: str) -> None:
    assert is_valid_bsn(bsn)


@pytest.mark.parametrize("bsn", ["123456789", "99999365", "9999936530", "abcdefghi", "000000000"])
def test_elfproef_refuses_invalid_bsns(bsn: str) -> None:
    assert not is_valid_bsn(bsn)


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_changing_one_digit_of_a_valid_bsn_breaks_it(digits: str) -> None:
    if not is_valid_bsn(digits):
        return
    position = 3
    changed = digits[:position] + str((int(digits[position]) + 1) % 10) + digits[position + 1 :]
    assert not is_valid_bsn(changed)
