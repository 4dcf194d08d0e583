"""What happened to a referral, as the aggregate reports it: small frozen records that a
service turns into ledger writes and wire events (``contracts/events``). They are not the
wire contracts themselves: no envelope, no ids of their own, no validation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from contracts.codes import ReferralStatus
from contracts.events.status import WelfareStatus, WorBusinessStatus


@dataclass(frozen=True)
class Submitted:
    referral_id: UUID


@dataclass(frozen=True)
class Assigned:
    referral_id: UUID
    organisation_id: str
    released_from_hold: bool  # it was on hold as unroutable; the Task is requested again


@dataclass(frozen=True)
class Held:
    """Unroutable: the GP's Task is on hold, with a reason it can read."""

    referral_id: UUID
    reason: str


@dataclass(frozen=True)
class StatusApplied:
    """A welfare status moved the referral; the GP's Task shows ``task_status``."""

    referral_id: UUID
    welfare_status: WelfareStatus
    sequence: int
    task_status: ReferralStatus
    business_status: WorBusinessStatus


@dataclass(frozen=True)
class ReportPosted:
    """The social edge accepted a POSTed status for the status topic (not yet applied)."""

    referral_id: UUID
    welfare_status: WelfareStatus
    sequence: int


@dataclass(frozen=True)
class SignalAccepted:
    referral_id: UUID
    signal_id: UUID


@dataclass(frozen=True)
class Withdrawn:
    """The GP withdrew; the assigned organisation (if any) is to be told."""

    referral_id: UUID
    organisation_id: str | None


@dataclass(frozen=True)
class Overdue:
    referral_id: UUID
    organisation_id: str
    timer: str  # received | first-contact
    due_at: datetime


@dataclass(frozen=True)
class ReceiptRecorded:
    """The GP system had this Task version for the first time: tell the organisation."""

    referral_id: UUID
    organisation_id: str
    task_version: int


Event = (
    Submitted
    | Assigned
    | Held
    | StatusApplied
    | ReportPosted
    | SignalAccepted
    | Withdrawn
    | Overdue
    | ReceiptRecorded
)

Events = tuple[Event, ...]
