"""The FHIR resources Brug serves, built from the ledger: Task, transaction-response.

Built as plain JSON: validating our own output with fhir.resources on every request cost
about a tenth of the gateway's CPU. tests/unit/test_fhir_resources.py validates these
shapes with fhir.resources instead, once per test run."""

from __future__ import annotations

from typing import Any

from adapters.ledger.repository import ReferralRow
from contracts.fhir_systems import AGB, REFERRAL_IDENTIFIER, TASK_BUSINESS_STATUS


def task_resource(row: ReferralRow) -> dict[str, Any]:
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
        task["owner"] = {
            "identifier": {"system": "urn:brug:organisation", "value": row.organisation_id}
        }
    return task


def transaction_response(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
