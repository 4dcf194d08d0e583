"""What the FHIR edge sends is valid FHIR R4: checked here with fhir.resources, so the
hot path does not have to re-validate its own output."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.task import Task

from adapters.fhir.capability import capability_statement
from adapters.fhir.outcomes import operation_outcome
from adapters.fhir.resources import task_resource, transaction_response
from adapters.ledger.repository import ReferralRow
from contracts.codes import ReferralStatus

AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _row(**changes: object) -> ReferralRow:
    values: dict[str, object] = {
        "referral_id": uuid.uuid4(),
        "organisation_id": "dynamo-amsterdam",
        "municipality_code": "GM0363",
        "status": ReferralStatus.ON_HOLD,
        "task_id": uuid.uuid4(),
        "requester_agb": "01999001",
        "service_request_system": "urn:x",
        "service_request_value": "1",
        "status_reason": "no organisation serves GM9999",
        "version": 2,
        "created_at": AT,
        "updated_at": AT,
    }
    return ReferralRow(**(values | changes))  # type: ignore[arg-type]


def test_a_task_is_valid_fhir_and_carries_the_referral() -> None:
    row = _row()
    task = Task.model_validate(task_resource(row))
    assert task.status == "on-hold"
    assert task.statusReason.text == "no organisation serves GM9999"
    assert task.meta.versionId == "2"
    assert task.identifier[0].value == str(row.referral_id)
    assert task.owner.identifier.value == "dynamo-amsterdam"


def test_an_unassigned_task_has_no_owner_and_no_status_reason() -> None:
    task = Task.model_validate(
        task_resource(
            _row(organisation_id=None, status_reason=None, status=ReferralStatus.REQUESTED)
        )
    )
    assert task.owner is None and task.statusReason is None


def test_a_transaction_response_is_valid_fhir() -> None:
    entries = [
        {"response": {"status": "201 Created", "location": "ServiceRequest/1/_history/1"}},
        {"resource": task_resource(_row()), "response": {"status": "201 Created"}},
    ]
    bundle = Bundle.model_validate(transaction_response(entries))
    assert bundle.type == "transaction-response"


def test_capability_statement_and_outcomes_are_valid_fhir() -> None:
    statement = CapabilityStatement.model_validate(capability_statement("http://x/fhir", "1"))
    assert statement.fhirVersion == "4.0.1"
    outcome = operation_outcome("error", "value", "bad BSN", "Patient.identifier[0].value")
    assert outcome["issue"][0]["expression"] == ["Patient.identifier[0].value"]


def test_the_wire_format_follows_what_the_client_asked_for_or_spoke() -> None:
    from adapters.fhir.formats import wants_xml

    assert wants_xml("application/fhir+xml", "", None)
    assert wants_xml("application/fhir+json", "application/fhir+xml", None)
    assert not wants_xml("application/fhir+xml", "", "json")
    assert wants_xml("", "*/*", "xml")
    assert not wants_xml("application/json", "application/fhir+json, application/fhir+xml", None)


def test_xml_and_json_convert_both_ways() -> None:
    import json

    from adapters.fhir.formats import json_to_xml, xml_to_json

    task = task_resource(_row())
    assert json.loads(xml_to_json(json_to_xml(task), "Task"))["id"] == task["id"]
