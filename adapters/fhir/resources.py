"""The FHIR resources Brug serves, built from the ledger: Task, Communication,
searchset and transaction-response Bundles.

Built as plain JSON: validating our own output with fhir.resources on every request cost
about a tenth of the gateway's CPU. tests/unit/test_fhir_resources.py validates these
shapes with fhir.resources instead, once per test run."""

from __future__ import annotations

from typing import Any

from adapters.ledger.repository import CommunicationRow, ReferralRow
from contracts.fhir_systems import (
    ACTIVITY_KIND,
    AGB,
    COMMUNICATION_CATEGORY,
    ORGANISATION,
    POSITIVE_HEALTH,
    REFERRAL_IDENTIFIER,
    SIGNAL_KIND,
    TASK_BUSINESS_STATUS,
    TASK_OUTPUT,
)


def task_resource(row: ReferralRow, feedback: CommunicationRow | None = None) -> dict[str, Any]:
    """The Task that tracks a referral, as the requesting GP system sees it."""
    assert row.task_id is not None and row.updated_at is not None and row.created_at is not None
    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": str(row.task_id),
        "meta": {"versionId": str(row.version), "lastUpdated": row.updated_at.isoformat()},
        "identifier": [{"system": REFERRAL_IDENTIFIER, "value": str(row.referral_id)}],
        "basedOn": [
            {
                "reference": f"ServiceRequest/{row.referral_id}",
                "identifier": {
                    "system": row.service_request_system,
                    "value": row.service_request_value,
                },
            }
        ],
        "status": row.status.value,
        "intent": "order",
        "authoredOn": row.created_at.isoformat(),
        "lastModified": row.updated_at.isoformat(),
        "requester": {"identifier": {"system": AGB, "value": row.requester_agb}},
        "focus": {"reference": f"ServiceRequest/{row.referral_id}"},
    }
    if row.status_reason:
        task["statusReason"] = {"text": row.status_reason}
    if row.business_status:
        task["businessStatus"] = {
            "coding": [{"system": TASK_BUSINESS_STATUS, "code": row.business_status}]
        }
    if row.organisation_id:
        task["owner"] = {"identifier": {"system": ORGANISATION, "value": row.organisation_id}}
    if notes := _service_level_notes(row):
        task["note"] = notes
    if row.outcome is not None:
        task["output"] = _outcome_outputs(row.outcome, feedback)
    return task


def _output(code: str, **value: Any) -> dict[str, Any]:
    return {"type": {"coding": [{"system": TASK_OUTPUT, "code": code}]}, **value}


def _outcome_outputs(
    outcome: dict[str, Any], feedback: CommunicationRow | None
) -> list[dict[str, Any]]:
    """Task.output on completion: the closing summary, each activity, the Communication."""
    outputs = [_output("closing-summary", valueString=outcome["summary"])]
    for activity in outcome.get("activities", []):
        outputs.append(
            _output(
                "linked-activity",
                valueCodeableConcept={
                    "coding": [{"system": ACTIVITY_KIND, "code": activity["kind"]}],
                    "text": activity["description"],
                },
            )
        )
    if feedback is not None:
        outputs.append(
            _output(
                "feedback-communication",
                valueReference={"reference": f"Communication/{feedback.communication_id}"},
            )
        )
    return outputs


def _service_level_notes(row: ReferralRow) -> list[dict[str, Any]]:
    notes = []
    if row.received_overdue_at is not None and row.received_due_at is not None:
        notes.append(
            {
                "time": row.received_overdue_at.isoformat(),
                "text": f"Service level missed: {row.organisation_id} did not confirm receipt "
                f"by {row.received_due_at.isoformat()}",
            }
        )
    if row.contact_overdue_at is not None and row.contact_due_at is not None:
        notes.append(
            {
                "time": row.contact_overdue_at.isoformat(),
                "text": f"Service level missed: {row.organisation_id} made no first contact "
                f"by {row.contact_due_at.isoformat()}",
            }
        )
    return notes


def communication_resource(row: CommunicationRow, referral: ReferralRow) -> dict[str, Any]:
    """Feedback (the terugkoppeling) or a signal from the welfare side, to the requesting GP."""
    category = "wor-feedback" if row.category == "feedback" else "wor-signal"
    communication: dict[str, Any] = {
        "resourceType": "Communication",
        "id": str(row.communication_id),
        "meta": {"versionId": "1", "lastUpdated": row.sent_at.isoformat()},
        "basedOn": [{"reference": f"ServiceRequest/{row.referral_id}"}],
        "status": "completed",
        "category": [{"coding": [{"system": COMMUNICATION_CATEGORY, "code": category}]}],
        "about": [{"reference": f"Task/{referral.task_id}"}],
        "sent": row.sent_at.isoformat(),
        "sender": {"identifier": {"system": ORGANISATION, "value": row.sender}},
        "recipient": [{"identifier": {"system": AGB, "value": referral.requester_agb}}],
    }
    if row.category == "feedback":
        communication["payload"] = _feedback_payload(row.payload)
        if contained := _positive_health_observations(row.payload):
            communication["contained"] = contained
            communication["payload"] += [
                {"contentReference": {"reference": f"#{o['id']}"}} for o in contained
            ]
    else:
        communication["topic"] = {"coding": [{"system": SIGNAL_KIND, "code": row.payload["kind"]}]}
        communication["payload"] = [{"contentString": row.payload["text"]}]
        if row.action_task_id is not None:
            communication["priority"] = "urgent"
    return communication


def _feedback_payload(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    payload = [{"contentString": outcome["summary"]}]
    for activity in outcome.get("activities", []):
        payload.append(
            {"contentString": f"Linked to ({activity['kind']}): {activity['description']}"}
        )
    return payload


def _positive_health_observations(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    """Positive Health spider webs as contained Observations, one component per dimension;
    only present when the patient consented (the contract refuses scores without it)."""
    if not outcome.get("positive_health_consent"):
        return []
    observations = []
    for moment in ("before", "after"):
        measurement = outcome.get(f"positive_health_{moment}")
        if measurement is None:
            continue
        observations.append(
            {
                "resourceType": "Observation",
                "id": f"positive-health-{moment}",
                "status": "final",
                "code": {
                    "coding": [{"system": POSITIVE_HEALTH, "code": "spider-web"}],
                    "text": f"Positive Health ({moment} coaching)",
                },
                "effectiveDateTime": measurement["measured_on"],
                "component": [
                    {
                        "code": {"coding": [{"system": POSITIVE_HEALTH, "code": dimension}]},
                        "valueInteger": score,
                    }
                    for dimension, score in sorted(measurement["scores"].items())
                ],
            }
        )
    return observations


def action_task_resource(row: CommunicationRow, referral: ReferralRow) -> dict[str, Any]:
    """The Task a signal creates when the welfare side asks the GP to act: owned by the GP."""
    assert row.action_task_id is not None
    return {
        "resourceType": "Task",
        "id": str(row.action_task_id),
        "meta": {"versionId": "1", "lastUpdated": row.sent_at.isoformat()},
        "basedOn": [{"reference": f"ServiceRequest/{row.referral_id}"}],
        "status": "requested",
        "intent": "proposal",
        "priority": "urgent",
        "description": "The welfare organisation asks the GP to act on a signal",
        "focus": {"reference": f"Communication/{row.communication_id}"},
        "authoredOn": row.sent_at.isoformat(),
        "requester": {"identifier": {"system": ORGANISATION, "value": row.sender}},
        "owner": {"identifier": {"system": AGB, "value": referral.requester_agb}},
    }


def searchset(
    resources: list[dict[str, Any]], total: int, base_url: str, links: dict[str, str]
) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": [{"relation": relation, "url": url} for relation, url in links.items()],
    }
    if resources:  # FHIR has no empty arrays: no match, no entry element
        bundle["entry"] = [
            {
                "fullUrl": f"{base_url}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ]
    return bundle


def task_tracking_outcome(service_request: str, task: str) -> dict[str, Any]:
    """The informational OperationOutcome that names the Task tracking a new referral:
    ``Bundle.entry.response.outcome`` of a transaction, the body of a plain create.
    ``details.text`` is the Task's ``Task/<id>/_history/<version>``."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "information",
                "code": "informational",
                "details": {"text": task},
                "diagnostics": f"referral accepted as {service_request}; tracked by {task} "
                f"(GET Task?focus={service_request})",
            }
        ],
    }


def transaction_response(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
