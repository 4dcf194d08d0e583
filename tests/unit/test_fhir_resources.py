"""What the FHIR edge sends is valid FHIR R4: checked here with fhir.resources, so the
hot path does not have to re-validate its own output."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.task import Task

from adapters.fhir.capability import capability_statement
from adapters.fhir.outcomes import operation_outcome
from adapters.fhir.resources import (
    action_task_resource,
    communication_resource,
    searchset,
    task_resource,
    transaction_response,
)
from adapters.ledger.repository import CommunicationRow, ReferralRow
from contracts.codes import ReferralStatus
from contracts.events.status import PositiveHealthDimension

POSITIVE_HEALTH_DIMENSIONS = [d.value for d in PositiveHealthDimension]

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


OUTCOME = {
    "summary": "Joined the Tuesday walking group; feels less alone.",
    "activities": [{"kind": "exercise", "description": "Walking group, Tuesdays"}],
    "positive_health_consent": True,
    "positive_health_before": {
        "measured_on": "2026-09-01T10:00:00+00:00",
        "scores": {d: 4 for d in POSITIVE_HEALTH_DIMENSIONS},
    },
    "positive_health_after": {
        "measured_on": "2026-11-01T10:00:00+00:00",
        "scores": {d: 7 for d in POSITIVE_HEALTH_DIMENSIONS},
    },
}


def _feedback(row: ReferralRow, payload: dict[str, object]) -> CommunicationRow:
    return CommunicationRow(
        communication_id=uuid.uuid4(),
        referral_id=row.referral_id,
        category="feedback",
        sender="dynamo-amsterdam",
        payload=payload,
        sent_at=AT,
    )


def test_a_completed_task_carries_the_outcome_and_points_at_the_feedback() -> None:
    row = _row(status=ReferralStatus.COMPLETED, status_reason=None, outcome=OUTCOME)
    feedback = _feedback(row, OUTCOME)
    task = Task.model_validate(task_resource(row, feedback))
    codes = [o.type.coding[0].code for o in task.output]
    assert codes == ["closing-summary", "linked-activity", "feedback-communication"]
    assert task.output[0].valueString == OUTCOME["summary"]
    assert task.output[1].valueCodeableConcept.text == "Walking group, Tuesdays"
    assert task.output[2].valueReference.reference == f"Communication/{feedback.communication_id}"


def test_feedback_is_a_communication_with_consented_positive_health_observations() -> None:
    row = _row()
    communication = Communication.model_validate(
        communication_resource(_feedback(row, OUTCOME), row)
    )
    assert communication.basedOn[0].reference == f"ServiceRequest/{row.referral_id}"
    assert communication.recipient[0].identifier.value == row.requester_agb
    assert communication.payload[0].contentString == OUTCOME["summary"]
    before, after = communication.contained
    assert [c.valueInteger for c in after.component] == [7] * 6
    assert {c.code.coding[0].code for c in before.component} == set(POSITIVE_HEALTH_DIMENSIONS)
    references = [p.contentReference.reference for p in communication.payload if p.contentReference]
    assert references == ["#positive-health-before", "#positive-health-after"]


def test_feedback_without_consent_carries_no_scores() -> None:
    row = _row()
    summary_only = {"summary": "Declined further coaching.", "activities": []}
    communication = Communication.model_validate(
        communication_resource(_feedback(row, summary_only), row)
    )
    assert communication.contained is None
    assert [p.contentString for p in communication.payload] == ["Declined further coaching."]


def test_a_signal_asking_for_action_is_a_communication_and_a_task_for_the_gp() -> None:
    row = _row()
    signal = CommunicationRow(
        communication_id=uuid.uuid4(),
        referral_id=row.referral_id,
        category="signal",
        sender="dynamo-amsterdam",
        payload={
            "kind": "health-concern",
            "text": "Seems short of breath",
            "action_requested": True,
        },
        sent_at=AT,
        action_task_id=uuid.uuid4(),
    )
    communication = Communication.model_validate(communication_resource(signal, row))
    assert communication.topic.coding[0].code == "health-concern"
    assert communication.priority == "urgent"
    task = Task.model_validate(action_task_resource(signal, row))
    assert task.owner.identifier.value == row.requester_agb
    assert task.focus.reference == f"Communication/{signal.communication_id}"


def test_a_missed_service_level_shows_as_a_task_note() -> None:
    row = _row(received_due_at=AT, received_overdue_at=AT)
    task = Task.model_validate(task_resource(row))
    assert "did not confirm receipt" in task.note[0].text


def test_a_searchset_is_valid_fhir() -> None:
    row = _row()
    bundle = Bundle.model_validate(
        searchset([task_resource(row)], 3, "http://x/fhir", {"self": "http://x/fhir/Task"})
    )
    assert bundle.total == 3 and bundle.entry[0].fullUrl == f"http://x/fhir/Task/{row.task_id}"
