"""What Brug keeps of the GP's Patient: name, contact details, address, birth year and
age, and the municipality its postcode lies in; and the BSN check. The BSN, and anything
else in the Patient resource, stays here (part of ``translation.py``'s privacy boundary).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from adapters.fhir.outcomes import FhirProblem
from contracts.codes import AgeBand
from contracts.details import Address, Person
from contracts.fhir_systems import BSN
from contracts.postcodes import PostcodeTable
from services.fhir_gateway.bsn import is_valid_bsn
from services.fhir_gateway.located import Located


def check_bsn(patient: Located) -> str | None:
    """The patient's BSN, if it has one, checked; only its pseudonym may go further."""
    bsn = None
    for index, identifier in enumerate(patient.resource.get("identifier") or []):
        if identifier.get("system") != BSN:
            continue
        value = str(identifier.get("value", ""))
        if not is_valid_bsn(value):
            raise FhirProblem(
                422,
                "value",
                "the BSN fails the elfproef (eleven test)",
                f"{patient.path}.identifier[{index}].value",
            )
        bsn = bsn or value
    return bsn


def person_of(patient: Located, today: date, postcodes: PostcodeTable) -> tuple[Person, str]:
    resource = patient.resource
    given, family, display = _name(patient)
    phones, emails = telecom(resource.get("telecom"))
    address, address_index = _current_address(resource.get("address"))
    if not phones and not emails and not (address and address.lines and address.postal_code):
        raise FhirProblem(
            422,
            "required",
            "no usable contact details: the coach needs a phone number, an e-mail address "
            "or a postal address",
            f"{patient.path}.telecom",
        )
    if address is None or not address.postal_code:
        raise FhirProblem(
            422,
            "required",
            "the patient's postcode is needed to find their municipality",
            f"{patient.path}.address.postalCode",
        )
    municipality = postcodes.municipality_for(address.postal_code)
    if municipality is None:
        raise FhirProblem(
            422,
            "value",
            "the patient's postcode is not a known Dutch postcode",
            f"{patient.path}.address[{address_index}].postalCode",
        )
    birth_year, age = _age(resource.get("birthDate"), today)
    if age is None:
        raise FhirProblem(
            422,
            "required",
            "the patient's birth date is needed for the coach (age band)",
            f"{patient.path}.birthDate",
        )
    person = Person(
        given_names=given,
        family_name=family,
        display_name=display,
        birth_year=birth_year,
        age=age,
        age_band=AgeBand.for_age(age),
        phone=phones,
        email=emails,
        address=address,
        municipality_code=municipality,
    )
    return person, municipality


def _name(patient: Located) -> tuple[list[str], str | None, str]:
    names = patient.resource.get("name") or []
    preferred = sorted(names, key=lambda n: {"official": 0, "usual": 1}.get(n.get("use"), 2))
    for name in preferred:
        if display := display_name(name):
            return [g for g in name.get("given") or [] if g], name.get("family"), display
    raise FhirProblem(
        422,
        "required",
        "the Patient needs a name so the coach can address them",
        f"{patient.path}.name",
    )


def display_name(name: dict[str, Any]) -> str:
    given = [g for g in name.get("given") or [] if g]
    return str(name.get("text") or " ".join([*given, name.get("family") or ""]).strip())


def telecom(points: list[dict[str, Any]] | None) -> tuple[list[str], list[str]]:
    usable = [p for p in points or [] if p.get("value") and not (p.get("period") or {}).get("end")]
    phones = [p["value"] for p in usable if p.get("system") in {"phone", "sms"}]
    emails = [p["value"] for p in usable if p.get("system") == "email"]
    return phones, emails


def _current_address(addresses: list[dict[str, Any]] | None) -> tuple[Address | None, int]:
    """The home address still in use; else the first current one."""
    current = [
        (index, a)
        for index, a in enumerate(addresses or [])
        if a.get("use") != "old" and not (a.get("period") or {}).get("end")
    ]
    current.sort(key=lambda pair: 0 if pair[1].get("use") == "home" else 1)
    if not current:
        return None, 0
    index, chosen = current[0]
    return (
        Address(
            lines=chosen.get("line") or [],
            postal_code=chosen.get("postalCode"),
            city=chosen.get("city"),
        ),
        index,
    )


def _age(birth_date: str | None, today: date) -> tuple[int | None, int | None]:
    if not birth_date:
        return None, None
    year = int(birth_date[:4])
    if len(birth_date) < 10:
        return year, today.year - year
    born = date.fromisoformat(birth_date[:10])
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    return year, age
