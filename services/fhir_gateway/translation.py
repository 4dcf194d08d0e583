"""From a GP's FHIR referral to what Brug keeps: validated, consent-checked, minimised.

Pure: a parsed request in, an ``Intake`` out, or a ``FhirProblem`` naming the offending
element by FHIRPath. What the social side may see is decided here and nowhere else, as an
allow-list (``contracts/details.py`` is the whitelist): name, contact details, age,
municipality, the GP's question, themes and the referrer (and, for the monitor, the referrer's
discipline: GP, POH-GGZ, POH-S or other, never who). Diagnoses, the code, text or
display of any reason, Condition text, medication, observations, extensions and the BSN
never leave this module (and ``patient.py``, which reads the Patient for it). A reason no
table maps becomes theme ``other``, nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.servicerequest import ServiceRequest
from pydantic import ValidationError

from adapters.fhir.outcomes import FhirProblem, structure_problem
from contracts.codes import ReferrerDiscipline, Urgency, WorTheme
from contracts.details import Person, Referrer
from contracts.directory import WelfareDirectory
from contracts.fhir_systems import AGB
from contracts.mappings import DisciplineTable, ThemeTable, referrer_discipline_table
from contracts.postcodes import PostcodeTable
from services.fhir_gateway.located import Located, References
from services.fhir_gateway.patient import check_bsn, display_name, person_of, telecom

URGENCY_BY_PRIORITY = {
    "routine": Urgency.ROUTINE,
    "urgent": Urgency.URGENT,
    "asap": Urgency.ASAP,
    "stat": Urgency.ASAP,
}


@dataclass(frozen=True)
class Intake:
    service_request_system: str
    service_request_value: str
    if_none_exist: str | None
    requester_agb: str
    municipality_code: str
    organisation_id: str
    themes: list[WorTheme]
    urgency: Urgency
    person: Person
    question: str
    referrer: Referrer
    entries: list[Located]
    patient_pseudonym: str | None = None  # the BSN's keyed pseudonym (adapters/pseudonyms.py)
    referrer_discipline: ReferrerDiscipline = ReferrerDiscipline.UNKNOWN  # for the monitor


def parse_bundle(document: Any) -> list[Located]:
    """Structural checks of a transaction Bundle; returns its entries with their paths."""
    _expect_resource_type(document, "Bundle")
    if document.get("type") != "transaction":
        raise FhirProblem(
            400,
            "invalid",
            f"Bundle.type must be 'transaction', not {document.get('type')!r}",
            "Bundle.type",
        )
    _validate_model(Bundle, document, "Bundle")
    located = []
    for index, entry in enumerate(document.get("entry") or []):
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            continue
        request = {"fullUrl": entry.get("fullUrl"), **(entry.get("request") or {})}
        path = f"Bundle.entry[{index}].resource.ofType({resource.get('resourceType')})"
        located.append(Located(resource, path, request))
    return located


def parse_service_request(document: Any) -> list[Located]:
    """``POST [base]/ServiceRequest``: Patient, Consent and requester are contained."""
    _expect_resource_type(document, "ServiceRequest")
    _validate_model(ServiceRequest, document, "ServiceRequest")
    located = [Located(document, "ServiceRequest", {"method": "POST", "url": "ServiceRequest"})]
    for index, contained in enumerate(document.get("contained") or []):
        path = f"ServiceRequest.contained[{index}].ofType({contained.get('resourceType')})"
        located.append(Located(contained, path))
    return located


def read_referral(
    located: list[Located],
    *,
    today: date,
    postcodes: PostcodeTable,
    directory: WelfareDirectory,
    themes: ThemeTable,
    pseudonymise: Callable[[str], str] | None = None,
    disciplines: DisciplineTable | None = None,
) -> Intake:
    """``pseudonymise`` turns the BSN into the pseudonym kept on the referral; the BSN
    itself goes no further than this function."""
    references = References(located)
    service_request = _the_service_request(references)
    sr = service_request.resource
    patient = references.resolve(sr.get("subject"), "Patient")
    if patient is None:
        raise FhirProblem(
            422,
            "required",
            "the ServiceRequest's subject must reference a Patient sent in the same request",
            f"{service_request.path}.subject",
        )
    _check_consent(references, patient, today)
    bsn = check_bsn(patient)
    identifier_system, identifier_value = _service_request_identifier(service_request)
    person, municipality_code = person_of(patient, today, postcodes)
    organisation = directory.organisation_for(municipality_code)
    if organisation is None:
        raise FhirProblem(
            422,
            "business-rule",
            f"no welfare organisation in Brug's directory serves municipality "
            f"{municipality_code}, where the patient's postcode lies",
            f"{patient.path}.address.postalCode",
        )
    return Intake(
        service_request_system=identifier_system,
        service_request_value=identifier_value,
        if_none_exist=(service_request.request or {}).get("ifNoneExist"),
        requester_agb=_requester_agb(references, service_request),
        municipality_code=municipality_code,
        organisation_id=organisation.id,
        themes=_themes(sr, references, themes),
        urgency=URGENCY_BY_PRIORITY.get(sr.get("priority", "routine"), Urgency.ROUTINE),
        person=person,
        question=_question(sr),
        referrer=_referrer(references, service_request),
        entries=located,
        patient_pseudonym=pseudonymise(bsn) if bsn and pseudonymise else None,
        referrer_discipline=_referrer_discipline(
            references, service_request, disciplines or referrer_discipline_table()
        ),
    )


def _expect_resource_type(document: Any, expected: str) -> None:
    if not isinstance(document, dict):
        raise FhirProblem(400, "structure", f"expected a JSON object with a {expected}")
    actual = document.get("resourceType")
    if actual != expected:
        raise FhirProblem(
            400, "invalid", f"expected resourceType {expected}, got {actual!r}", "resourceType"
        )


def _validate_model(model: Any, document: dict[str, Any], root: str) -> None:
    try:
        model.model_validate(document)
    except ValidationError as error:
        raise structure_problem(error, root, "FHIR R4") from None


def _the_service_request(references: References) -> Located:
    requests = references.all_of("ServiceRequest")
    if len(requests) != 1:
        raise FhirProblem(
            422,
            "required",
            f"a referral carries exactly one ServiceRequest, found {len(requests)}",
            "Bundle.entry.resource.ofType(ServiceRequest)",
        )
    service_request = requests[0]
    intent = service_request.resource.get("intent")
    if intent != "order":
        raise FhirProblem(
            422,
            "value",
            f"ServiceRequest.intent must be 'order', not {intent!r}",
            f"{service_request.path}.intent",
        )
    return service_request


def _service_request_identifier(service_request: Located) -> tuple[str, str]:
    for identifier in service_request.resource.get("identifier") or []:
        if identifier.get("system") and identifier.get("value"):
            return identifier["system"], identifier["value"]
    raise FhirProblem(
        422,
        "required",
        "the ServiceRequest needs an identifier (system and value) so retries are recognised",
        f"{service_request.path}.identifier",
    )


def _check_consent(references: References, patient: Located, today: date) -> None:
    consents = [
        c
        for c in references.all_of("Consent")
        if references.resolve(c.resource.get("patient"), "Patient") is patient
    ]
    if not consents:
        raise FhirProblem(
            422,
            "required",
            "no Consent for this Patient: a referral crosses to the social domain only "
            "with the patient's consent",
            "Bundle.entry.resource.ofType(Consent)",
        )
    problems = [_consent_problem(consent, today) for consent in consents]
    if all(problems):
        consent, problem = next((c, p) for c, p in zip(consents, problems, strict=True) if p)
        raise FhirProblem(422, "business-rule", problem[0], f"{consent.path}.{problem[1]}")


def _consent_problem(consent: Located, today: date) -> tuple[str, str] | None:
    resource = consent.resource
    if resource.get("status") != "active":
        return f"the Consent is {resource.get('status')!r}, not 'active'", "status"
    provision = resource.get("provision") or {}
    if provision.get("type") == "deny":
        return "the Consent denies sharing", "provision.type"
    end = (provision.get("period") or {}).get("end")
    if end and date.fromisoformat(end[:10]) < today:
        return f"the Consent expired on {end[:10]}", "provision.period.end"
    return None


def _themes(sr: dict[str, Any], references: References, table: ThemeTable) -> list[WorTheme]:
    """Themes from ServiceRequest.reasonCode and the codes of referenced Conditions.

    Only the theme crosses: a reason that no table maps (an unknown code, or free text
    only) becomes ``other``, carrying neither its code nor its text or display. A
    Condition's text, notes and other details are medical and stay behind.
    """
    themes: list[WorTheme] = []
    concepts = list(sr.get("reasonCode") or [])
    for reference in sr.get("reasonReference") or []:
        if condition := references.resolve(reference, "Condition"):
            concepts.append(condition.resource.get("code") or {})
    for concept in concepts:
        if not (concept.get("coding") or concept.get("text")):
            continue  # no reason given here
        themes += _mapped(concept, table) or [WorTheme.OTHER]
    ordered = list(dict.fromkeys(themes))
    return ordered or [WorTheme.OTHER]


def _mapped(concept: dict[str, Any], table: ThemeTable) -> list[WorTheme]:
    return [
        theme
        for coding in concept.get("coding") or []
        if (theme := table.theme_for(coding.get("system", ""), coding.get("code", "")))
    ]


def _question(sr: dict[str, Any]) -> str:
    parts = [note.get("text", "") for note in sr.get("note") or []]
    parts.append(sr.get("patientInstruction") or "")
    return "\n\n".join(part.strip() for part in parts if part and part.strip())


def _requester_agb(references: References, service_request: Located) -> str:
    requester = service_request.resource.get("requester")
    for candidate in _requester_chain(references, requester):
        for identifier in candidate.resource.get("identifier") or []:
            if identifier.get("system") == AGB and identifier.get("value"):
                return str(identifier["value"])
    raise FhirProblem(
        422,
        "required",
        "the requester (PractitionerRole or Organization) needs an AGB identifier",
        f"{service_request.path}.requester",
    )


def _requester_chain(references: References, requester: dict[str, Any] | None) -> list[Located]:
    """The practice first (its AGB identifies the referring organisation), then the rest."""
    chain: list[Located] = []
    if role := references.resolve(requester, "PractitionerRole"):
        if organisation := references.resolve(role.resource.get("organization"), "Organization"):
            chain.append(organisation)
        chain.append(role)
        if practitioner := references.resolve(role.resource.get("practitioner"), "Practitioner"):
            chain.append(practitioner)
    for kind in ("Organization", "Practitioner"):
        if found := references.resolve(requester, kind):
            chain.append(found)
    return chain


def _referrer_discipline(
    references: References, service_request: Located, table: DisciplineTable
) -> ReferrerDiscipline:
    """Who referred, as a discipline only: the requester PractitionerRole's ``code`` (else its
    ``specialty``, where nl-core puts the AGB specialism) looked up in the versioned table.
    A role coded otherwise is ``other``; no role, or one without codes, ``unknown``."""
    role = references.resolve(service_request.resource.get("requester"), "PractitionerRole")
    if role is None:
        return ReferrerDiscipline.UNKNOWN
    codings = [pair for element in ("code", "specialty") for pair in _codings(role, element)]
    for system, code in codings:
        if found := table.discipline_for(system, code):
            return found
    return ReferrerDiscipline.OTHER if codings else ReferrerDiscipline.UNKNOWN


def _codings(item: Located, element: str) -> list[tuple[str, str]]:
    """(system, code) of every coding of a CodeableConcept list element, in order."""
    concepts = item.resource.get(element)
    found = []
    for concept in concepts if isinstance(concepts, list) else []:
        codings = concept.get("coding") if isinstance(concept, dict) else None
        for coding in codings if isinstance(codings, list) else []:
            if not isinstance(coding, dict):
                continue
            system, code = coding.get("system"), coding.get("code")
            if isinstance(system, str) and isinstance(code, str):
                found.append((system, code))
    return found


def _referrer(references: References, service_request: Located) -> Referrer:
    chain = _requester_chain(references, service_request.resource.get("requester"))
    phones: list[str] = []
    emails: list[str] = []
    name = organisation_name = None
    for item in chain:
        resource = item.resource
        item_phones, item_emails = telecom(resource.get("telecom"))
        phones += item_phones
        emails += item_emails
        if resource["resourceType"] == "Organization":
            organisation_name = resource.get("name")
        if resource["resourceType"] == "Practitioner" and resource.get("name"):
            name = display_name(resource["name"][0]) or None
    return Referrer(
        name=name,
        organisation_name=organisation_name,
        agb=_requester_agb(references, service_request),
        phone=list(dict.fromkeys(phones)),
        email=list(dict.fromkeys(emails)),
    )
