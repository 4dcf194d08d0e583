"""FHIR JSON and XML on the wire. Brug works on the JSON form inside; XML is parsed into it
at the edge and rendered from it on the way out, both by fhir.resources (lxml)."""

from __future__ import annotations

import json
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from adapters.fhir.outcomes import FhirProblem, structure_problem

FHIR_JSON = "application/fhir+json"
FHIR_XML = "application/fhir+xml"
JSON_TYPES = {FHIR_JSON, "application/json"}
XML_TYPES = {FHIR_XML, "application/xml", "text/xml"}


def xml_to_json(body: bytes, resource_type: str) -> bytes:
    """An XML resource of ``resource_type`` as FHIR JSON bytes, or a 400 OperationOutcome."""
    model = get_fhir_model_class(resource_type)
    try:
        resource = model.model_validate_xml(body)
    except ValidationError as error:
        raise structure_problem(error, resource_type, "FHIR XML") from None
    except Exception as error:  # lxml's syntax errors, wrong root element, …
        raise FhirProblem(
            400, "structure", f"not a FHIR {resource_type} in XML: {type(error).__name__}"
        ) from None
    return json.dumps(resource.model_dump(mode="json", exclude_none=True)).encode()


def json_to_xml(resource: dict[str, Any]) -> bytes:
    model = get_fhir_model_class(resource["resourceType"])
    rendered = model.model_validate(resource).model_dump_xml()
    return rendered if isinstance(rendered, bytes) else str(rendered).encode()


def wants_xml(content_type: str, accept: str, format_parameter: str | None) -> bool:
    """XML when the client asked for it (``_format``, ``Accept``) or spoke it."""
    if format_parameter:
        return "xml" in format_parameter
    if accept and "xml" in accept and "json" not in accept:
        return True
    return content_type.split(";")[0].strip().lower() in XML_TYPES
