"""The audit trail as FHIR R4 ``AuditEvent`` resources, for GP systems: the accesses to
their own referrals (``GET /fhir/AuditEvent?entity=ServiceRequest/{id}`` or ``?patient=``).

Each ``audit_log`` row becomes one AuditEvent, built and validated with
``fhir.resources.R4B`` (these reads are rare; the hot paths build plain JSON):

- ``type`` DICOM/HL7 ``rest`` (a RESTful operation), ``subtype`` Brug's action;
- ``action`` C/R/U/D/E, ``recorded`` the row's time, ``outcome`` 0 (allowed) or 4 (refused);
- ``purposeOfEvent`` Brug's purpose (``care-referral``, ``feedback``, …);
- ``agent``: who (the client, operator or service) and, as ``name``, the person the caller
  named (``X-Brug-Person``);
- ``entity``: the ServiceRequest (the referral). Never the BSN or its pseudonym, and not
  the row's ``detail`` (a reveal's reason is the privacy officer's, not the GP's).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.auditevent import AuditEvent
from sqlalchemy import Connection, func, or_, select

from adapters.ledger.tables import audit_log, referrals

AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
BRUG_ACTION = "urn:brug:audit-action"
BRUG_PURPOSE = "urn:brug:audit-purpose"
BRUG_ACTOR = "urn:brug:actor"
OUTCOME = {"allowed": "0", "refused": "4"}  # R4 audit-event-outcome: success, minor failure
_CREATE = {"submitted", "raised-signal", "subscription-created"}
_UPDATE = {"resubmitted", "routed", "withdrawn", "reported-status", "notified-gp"}
_DELETE = {"erased", "purge-details", "purged", "subscription-deleted"}


@dataclass(frozen=True)
class AuditQuery:
    """Whose audit rows a GP system asked for: always its own referrals only."""

    requester_agb: str
    referral_ids: list[uuid.UUID] | None = None
    task_ids: list[uuid.UUID] | None = None
    patient_pseudonym: str | None = None
    count: int = 50
    offset: int = 0


def search_audit_events(connection: Connection, query: AuditQuery) -> tuple[list[Any], int]:
    """The matching audit rows, oldest first, one page; and how many match in all."""
    own = select(referrals.c.referral_id).where(referrals.c.requester_agb == query.requester_agb)
    named = []  # entity=ServiceRequest/… and entity=Task/…: either
    if query.referral_ids is not None:
        named.append(referrals.c.referral_id.in_(query.referral_ids))
    if query.task_ids is not None:
        named.append(referrals.c.task_id.in_(query.task_ids))
    if named:
        own = own.where(or_(*named))
    if query.patient_pseudonym is not None:
        own = own.where(referrals.c.patient_pseudonym == query.patient_pseudonym)
    condition = audit_log.c.referral_id.in_(own)
    total = connection.execute(select(func.count()).where(condition)).scalar_one()
    rows = connection.execute(
        select(audit_log)
        .where(condition)
        .order_by(audit_log.c.at, audit_log.c.id)
        .offset(query.offset)
        .limit(query.count)
    ).all()
    return list(rows), total


def audit_event_resource(row: Any) -> dict[str, Any]:
    """One audit row as a validated R4 AuditEvent (JSON)."""
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": BRUG_ACTOR, "code": row.actor.split(":", 1)[0]}]},
        "who": {"identifier": {"system": BRUG_ACTOR, "value": row.actor}},
        "requestor": True,
    }
    if row.person:
        agent["name"] = row.person
    event = {
        "resourceType": "AuditEvent",
        "id": f"audit-{row.id}",  # unique: seq is per hash chain
        "type": {"system": AUDIT_EVENT_TYPE, "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": BRUG_ACTION, "code": row.action}],
        "action": _action(row.action),
        "recorded": row.at.isoformat(),
        "outcome": OUTCOME.get(row.result, "4"),
        "purposeOfEvent": [{"coding": [{"system": BRUG_PURPOSE, "code": row.purpose}]}],
        "agent": [agent],
        "source": {
            "observer": {"display": "Brug"},
            "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
        "entity": [
            {
                "what": {"reference": f"ServiceRequest/{row.referral_id}"},
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
            }
        ],
    }
    validated = AuditEvent.model_validate(event)
    built: dict[str, Any] = json.loads(validated.model_dump_json(exclude_none=True))
    return built


def _action(action: str) -> str:
    if action.startswith(("read-", "search-", "revealed-", "reported-accesses")):
        return "R"
    if action in _CREATE:
        return "C"
    if action in _UPDATE:
        return "U"
    if action in _DELETE:
        return "D"
    return "E"
