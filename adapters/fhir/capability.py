"""The CapabilityStatement: exactly what the edge supports, no more."""

from __future__ import annotations

from datetime import date
from typing import Any

from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from contracts.fhir_systems import REFERRAL_FEEDBACK_TOPIC


def capability_statement(base_url: str, software_version: str) -> dict[str, Any]:
    document = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date.today().isoformat(),
        "publisher": "Brug",
        "kind": "instance",
        "software": {"name": "Brug FHIR gateway", "version": software_version},
        "implementation": {
            "description": "Welzijn op Recept referrals from GP systems to welfare organisations",
            "url": base_url,
        },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/json", "application/fhir+xml"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "POST [base] takes a transaction Bundle with one social-prescribing "
                    "ServiceRequest (intent order), its Patient, an active Consent and the "
                    "requester (PractitionerRole/Organization with an AGB identifier). "
                    "Idempotent per X-Request-ID and per ServiceRequest.identifier."
                ),
                # No oauth-uris extension: it requires an authorize endpoint, which Backend
                # Services have none of; SMART 2 discovery is .well-known/smart-configuration.
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ],
                            "text": (
                                "SMART Backend Services: client_credentials with a "
                                "private_key_jwt assertion (see "
                                f"{base_url}/.well-known/smart-configuration)"
                            ),
                        }
                    ],
                    "description": "Access tokens of at most 5 minutes with system/ scopes.",
                },
                "interaction": [{"code": "transaction"}],
                "resource": [
                    {
                        "type": "ServiceRequest",
                        "interaction": [
                            {"code": "create"},
                            {"code": "update"},
                            {"code": "patch"},
                        ],
                        "conditionalCreate": True,
                        "documentation": (
                            "Patient and Consent contained in the ServiceRequest. Setting "
                            "status to 'revoked' (the only update or JSON Patch accepted) "
                            "withdraws the referral, like cancelling its Task."
                        ),
                    },
                    {
                        "type": "Task",
                        "interaction": [
                            {"code": "read"},
                            {"code": "search-type"},
                            {"code": "update"},
                            {"code": "patch"},
                        ],
                        "versioning": "versioned",
                        "searchParam": [
                            _search_param("_id", "token"),
                            _search_param("focus", "reference"),
                            _search_param("requester", "reference"),
                            _search_param("owner", "reference"),
                            _search_param("status", "token"),
                            _search_param("_lastUpdated", "date"),
                        ],
                        "documentation": (
                            "Tracks a referral; the requesting organisation reads and searches "
                            "it (_count/_offset paging, _sort=_lastUpdated|-_lastUpdated; an "
                            "unknown parameter is refused), and withdraws the referral by "
                            "setting status to 'cancelled' (the only update or JSON Patch "
                            "accepted). On completion, output carries the closing summary, the "
                            "linked activities and the feedback Communication."
                        ),
                    },
                    {
                        "type": "Communication",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            _search_param("_id", "token"),
                            _search_param("based-on", "reference"),
                            _search_param("category", "token"),
                        ],
                        "documentation": (
                            "From the welfare organisation to the requesting practice: the "
                            "closing feedback (category wor-feedback, Positive Health as "
                            "contained Observations when the patient consented) and signals "
                            "(wor-signal). The first read is a receipt for the organisation."
                        ),
                    },
                    {
                        "type": "Subscription",
                        "interaction": [{"code": "create"}, {"code": "read"}, {"code": "delete"}],
                        "operation": [
                            {
                                "name": "status",
                                "definition": "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status",
                            },
                            {
                                "name": "events",
                                "definition": "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-events",
                            },
                        ],
                        "documentation": (
                            "Topic-based (R4 Subscriptions Backport IG): criteria "
                            f"{REFERRAL_FEEDBACK_TOPIC}, channel rest-hook, payload "
                            "application/fhir+json with content id-only, optional "
                            "backport-heartbeat-period. Notified when a Task of the practice "
                            "changes or a Communication for it arrives; a failing endpoint is "
                            "retried for up to 24 h; $events returns what was sent."
                        ),
                    },
                    {
                        "type": "AuditEvent",
                        "interaction": [{"code": "search-type"}],
                        "searchParam": [
                            _search_param("entity", "reference"),
                            _search_param("patient", "reference"),
                        ],
                        "documentation": (
                            "Who accessed the practice's own referrals (NEN 7513): "
                            "entity=ServiceRequest/{id} or Task/{id}, or "
                            "patient:identifier=http://fhir.nl/fhir/NamingSystem/bsn|{bsn}; "
                            "one is required. Oldest first, _count/_offset paging."
                        ),
                    },
                ],
            }
        ],
    }
    return CapabilityStatement.model_validate(document).model_dump(mode="json", exclude_none=True)


def _search_param(name: str, kind: str) -> dict[str, str]:
    return {"name": name, "type": kind}
