"""The ledger's rows as the rest of Brug sees them: plain frozen records, and their
conversion from SQL result rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from contracts.codes import ReferralStatus


@dataclass(frozen=True)
class NewReferral:
    """Everything the intake stores for one accepted referral."""

    referral_id: UUID
    task_id: UUID
    client_id: str
    requester_agb: str
    service_request_system: str
    service_request_value: str
    municipality_code: str
    themes: list[str]
    age_band: str
    urgency: str
    submitted_at: datetime
    details: dict[str, Any]
    retain_until: datetime
    trace_id: str | None = None
    patient_pseudonym: str | None = None  # adapters/pseudonyms.py; never the BSN itself


@dataclass(frozen=True)
class ReferralRow:
    referral_id: UUID
    organisation_id: str | None
    municipality_code: str | None
    status: ReferralStatus
    task_id: UUID | None = None
    client_id: str | None = None
    requester_agb: str | None = None
    service_request_system: str | None = None
    service_request_value: str | None = None
    status_reason: str | None = None
    version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None
    themes: list[str] = field(default_factory=list)
    age_band: str | None = None
    urgency: str | None = None
    submitted_event_published: bool = True
    welfare_status: str | None = None
    status_sequence: int = 0
    business_status: str | None = None
    outcome: dict[str, Any] | None = None
    received_due_at: datetime | None = None
    contact_due_at: datetime | None = None
    received_overdue_at: datetime | None = None
    contact_overdue_at: datetime | None = None
    reported_status: str | None = None
    reported_sequence: int = 0
    gp_seen_version: int = 0  # the newest Task version the GP system had

    @property
    def withdrawn_by_gp(self) -> bool:
        """Cancelled by the GP (a patient's withdrawal, reported by the welfare side, is not)."""
        return self.status is ReferralStatus.CANCELLED and self.welfare_status != (
            "withdrawn-by-patient"
        )


@dataclass(frozen=True)
class CommunicationRow:
    communication_id: UUID
    referral_id: UUID
    category: str  # feedback | signal
    sender: str
    payload: dict[str, Any]
    sent_at: datetime
    action_task_id: UUID | None = None
    published: bool = False


@dataclass(frozen=True)
class DueTimer:
    referral_id: UUID
    organisation_id: str
    timer: str  # received | first-contact
    due_at: datetime


@dataclass(frozen=True)
class Assignment:
    outcome: str  # "assigned" | "already-assigned" | "unknown"
    organisation_id: str | None
    published: bool
    held: bool = False  # on hold as unroutable until now (an operator's replay)


@dataclass(frozen=True)
class StatusChange:
    status: ReferralStatus
    source: str
    occurred_at: datetime


@dataclass(frozen=True)
class Receipt:
    """The first time a GP system had a piece of feedback: tell the organisation."""

    referral_id: UUID
    organisation_id: str
    resource: str  # Task/<id>/_history/<version> | Communication/<id>


@dataclass(frozen=True)
class StoredResponse:
    request_hash: str
    status: int
    body: dict[str, Any]


def communication_row(row: Any) -> CommunicationRow:
    return CommunicationRow(
        communication_id=row.communication_id,
        referral_id=row.referral_id,
        category=row.category,
        sender=row.sender,
        payload=row.payload,
        sent_at=row.sent_at,
        action_task_id=row.action_task_id,
        published=row.published_at is not None,
    )


def referral_row(row: Any) -> ReferralRow:
    return ReferralRow(
        referral_id=row.referral_id,
        organisation_id=row.organisation_id,
        municipality_code=row.municipality_code,
        status=ReferralStatus(row.status),
        task_id=row.task_id,
        client_id=row.client_id,
        requester_agb=row.requester_agb,
        service_request_system=row.service_request_system,
        service_request_value=row.service_request_value,
        status_reason=row.status_reason,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        themes=list(row.themes or []),
        age_band=row.age_band,
        urgency=row.urgency,
        submitted_event_published=row.submitted_event_published_at is not None,
        welfare_status=row.welfare_status,
        status_sequence=row.status_sequence,
        business_status=row.business_status,
        outcome=row.outcome,
        received_due_at=row.received_due_at,
        contact_due_at=row.contact_due_at,
        received_overdue_at=row.received_overdue_at,
        contact_overdue_at=row.contact_overdue_at,
        gp_seen_version=row.gp_seen_version,
        reported_status=row.reported_status,
        reported_sequence=row.reported_sequence,
    )
