"""The referral aggregate: one referral as the rules see it, across both sides.

Each action answers with the events to publish (none for a harmless repeat) or a
``Refusal`` naming its problem code, and changes the referral only when it answers with an
event. The rules "is this the assigned organisation", "the GP withdrew" and "the referral
has ended" are stated here (and in ``status_machine``) and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from uuid import UUID

from contracts.codes import ReferralStatus
from contracts.events.status import StatusProblemCode, WelfareStatus, WorBusinessStatus
from domain.events import (
    Assigned,
    Events,
    Held,
    Overdue,
    ReceiptRecorded,
    ReportPosted,
    SignalAccepted,
    StatusApplied,
    Submitted,
    Withdrawn,
)
from domain.status_machine import (
    TASK_VIEW,
    Verdict,
    gp_withdrew,
    has_ended,
    judge,
    task_view,
    was_withdrawn,
)

TIMER_RECEIVED = "received"
TIMER_FIRST_CONTACT = "first-contact"
# Heard from, but no first contact yet: the first-contact timer runs.
AWAITING_CONTACT = frozenset({WelfareStatus.RECEIVED, WelfareStatus.ACCEPTED})


@dataclass(frozen=True)
class Refusal:
    """Nothing changed, and the caller is told why."""

    problem: StatusProblemCode
    detail: str


Outcome = Events | Refusal

_GP_WITHDREW = Refusal(StatusProblemCode.REFERRAL_ENDED, "the GP withdrew this referral")
_FOREIGN = Refusal(
    StatusProblemCode.FOREIGN_ORGANISATION,
    "this referral is not assigned to the organisation that sent the event",
)


@dataclass(frozen=True)
class Report:
    """A status from the welfare side, as the rules need it (the wire form carries more)."""

    status: WelfareStatus
    sequence: int
    business_status: WorBusinessStatus | None = None


class Stored(Protocol):
    """What a stored referral row offers to rebuild the aggregate (the ledger's row has it)."""

    @property
    def referral_id(self) -> UUID: ...
    @property
    def status(self) -> ReferralStatus: ...
    @property
    def organisation_id(self) -> str | None: ...
    @property
    def welfare_status(self) -> str | None: ...
    @property
    def status_sequence(self) -> int: ...
    @property
    def business_status(self) -> str | None: ...
    @property
    def reported_status(self) -> str | None: ...
    @property
    def reported_sequence(self) -> int: ...
    @property
    def received_due_at(self) -> datetime | None: ...
    @property
    def contact_due_at(self) -> datetime | None: ...
    @property
    def received_overdue_at(self) -> datetime | None: ...
    @property
    def contact_overdue_at(self) -> datetime | None: ...
    @property
    def gp_seen_version(self) -> int: ...


@dataclass
class Referral:
    """One referral: the GP's Task, the welfare side's status, routing, timers, receipts.

    Rebuilt from storage with ``Referral.of(row)``; what an action changed is stored by the
    caller, in the same transaction, from the events it answered with."""

    referral_id: UUID
    status: ReferralStatus = ReferralStatus.REQUESTED  # the GP's Task.status
    organisation_id: str | None = None
    welfare_status: WelfareStatus | None = None  # None: not yet heard from the welfare side
    sequence: int = 0  # of the newest applied welfare status
    business_status: WorBusinessStatus | None = None
    # What the organisation POSTed to the social edge: published, maybe not yet applied.
    reported_status: WelfareStatus | None = None
    reported_sequence: int = 0
    received_due_at: datetime | None = None
    contact_due_at: datetime | None = None
    received_overdue_at: datetime | None = None
    contact_overdue_at: datetime | None = None
    gp_seen_version: int = 0  # the newest Task version the GP system had
    signal_ids: frozenset[UUID] = field(default_factory=frozenset)

    @classmethod
    def submit(cls, referral_id: UUID) -> tuple[Referral, Events]:
        return cls(referral_id), (Submitted(referral_id),)

    @classmethod
    def of(cls, stored: Stored) -> Referral:
        return cls(
            referral_id=stored.referral_id,
            status=stored.status,
            organisation_id=stored.organisation_id,
            welfare_status=_welfare(stored.welfare_status),
            sequence=stored.status_sequence,
            business_status=WorBusinessStatus(stored.business_status)
            if stored.business_status
            else None,
            reported_status=_welfare(stored.reported_status),
            reported_sequence=stored.reported_sequence,
            received_due_at=stored.received_due_at,
            contact_due_at=stored.contact_due_at,
            received_overdue_at=stored.received_overdue_at,
            contact_overdue_at=stored.contact_overdue_at,
            gp_seen_version=stored.gp_seen_version,
        )

    # -- the rules everyone asks about ----------------------------------------------------

    @property
    def ended(self) -> bool:
        return has_ended(self.status)

    @property
    def withdrawn(self) -> bool:
        """By the GP or by the patient: the details are no longer handed out."""
        return was_withdrawn(self.status)

    @property
    def gp_withdrew(self) -> bool:
        return gp_withdrew(self.status, self.welfare_status)

    def assigned_to(self, organisation_id: str) -> bool:
        """The caller is the organisation this referral was routed to."""
        return self.organisation_id is not None and self.organisation_id == organisation_id

    # -- the router -----------------------------------------------------------------------

    def assign(
        self,
        organisation_id: str,
        *,
        received_due_at: datetime | None = None,
        contact_due_at: datetime | None = None,
    ) -> Outcome:
        """Route to an organisation, once: a later assignment leaves the first standing."""
        if self.ended:
            return Refusal(StatusProblemCode.REFERRAL_ENDED, f"{self._has_ended}; not assigned")
        if self.organisation_id is not None:
            return ()
        held = self.status is ReferralStatus.ON_HOLD
        self.organisation_id = organisation_id
        self.received_due_at, self.contact_due_at = received_due_at, contact_due_at
        if held:  # unroutable before, replayed after a fix: the GP sees it move on
            self.status = ReferralStatus.REQUESTED
        return (Assigned(self.referral_id, organisation_id, released_from_hold=held),)

    def hold(self, reason: str) -> Outcome:
        """Unroutable: the GP's Task goes on hold until an operator's replay routes it."""
        if self.ended:
            return Refusal(StatusProblemCode.REFERRAL_ENDED, f"{self._has_ended}; not held")
        if self.organisation_id is not None:
            return Refusal(
                StatusProblemCode.ILLEGAL_TRANSITION,
                f"already assigned to {self.organisation_id}; a routed referral is not held",
            )
        if self.status is ReferralStatus.ON_HOLD:
            return ()
        self.status = ReferralStatus.ON_HOLD
        return (Held(self.referral_id, reason),)

    # -- the welfare side -----------------------------------------------------------------

    def apply_report(self, sender: str, named_organisation: str, report: Report) -> Outcome:
        """A status event from ``sender`` (its topic or token), naming an organisation."""
        if sender != named_organisation or not self.assigned_to(sender):
            return _FOREIGN
        verdict = self._judge(self.welfare_status, self.sequence, report)
        if not verdict.apply:
            return _answer(verdict)
        task_status, business_status = TASK_VIEW[report.status]
        business_status = report.business_status or business_status  # _judge checked the fit
        self.status, self.business_status = task_status, business_status
        self.welfare_status, self.sequence = report.status, report.sequence
        return (
            StatusApplied(
                self.referral_id, report.status, report.sequence, task_status, business_status
            ),
        )

    def post_report(self, sender: str, report: Report) -> Outcome:
        """The social edge's judgement of a POST, before it goes on the status topic.

        Judged against the newest of what was applied and what was POSTed before (published,
        maybe not yet applied), so a case system may POST statuses in quick succession."""
        if not self.assigned_to(sender):
            return _FOREIGN
        current, last_sequence = self.welfare_status, self.sequence
        if self.reported_sequence > self.sequence and self.reported_status is not None:
            current, last_sequence = self.reported_status, self.reported_sequence
        verdict = self._judge(current, last_sequence, report)
        if not verdict.apply:
            return _answer(verdict)
        self.reported_status, self.reported_sequence = report.status, report.sequence
        return (ReportPosted(self.referral_id, report.status, report.sequence),)

    def raise_signal(self, sender: str, named_organisation: str, signal_id: UUID) -> Outcome:
        """A concern or question for the GP; its id makes a repeat on this referral harmless."""
        if sender != named_organisation or not self.assigned_to(sender):
            return _FOREIGN
        if self.gp_withdrew:
            return _GP_WITHDREW
        if signal_id in self.signal_ids:
            return ()
        self.signal_ids = self.signal_ids | {signal_id}
        return (SignalAccepted(self.referral_id, signal_id),)

    def _judge(self, current: WelfareStatus | None, last_sequence: int, report: Report) -> Verdict:
        """The state machine first (so a repeat stays harmless), then the rules that need
        the referral: nothing moves one the GP withdrew, and a business status must fit."""
        verdict = judge(current, last_sequence, report.status, report.sequence)
        if not verdict.apply:
            return verdict
        if self.gp_withdrew:
            return Verdict(False, _GP_WITHDREW.problem, _GP_WITHDREW.detail)
        if task_view(report.status, report.business_status) is None:
            return Verdict(
                False,
                StatusProblemCode.UNFITTING_BUSINESS_STATUS,
                f"business status {report.business_status} does not fit {report.status.value}",
            )
        return verdict

    # -- the GP side ----------------------------------------------------------------------

    def withdraw(self) -> Outcome:
        """The GP withdraws. Withdrawing again changes nothing (the organisation may be told
        again); an ended referral cannot be withdrawn."""
        if self.withdrawn:
            return ()
        if self.ended:
            return Refusal(
                StatusProblemCode.REFERRAL_ENDED,
                f"{self._has_ended}; it can no longer be withdrawn",
            )
        self.status = ReferralStatus.CANCELLED
        return (Withdrawn(self.referral_id, self.organisation_id),)

    def record_receipt(self, task_version: int) -> Outcome:
        """The GP system had this Task version. Only news from the welfare side earns the
        organisation a receipt, and only the first time."""
        if self.welfare_status is None or self.organisation_id is None:
            return ()
        if task_version <= self.gp_seen_version:
            return ()
        self.gp_seen_version = task_version
        return (ReceiptRecorded(self.referral_id, self.organisation_id, task_version),)

    # -- service-level timers -------------------------------------------------------------

    def due_timer(self, now: datetime) -> tuple[str, datetime] | None:
        """The timer that ran out and was not yet reported, with its due date: no
        ``received`` by its due date, or received or accepted without first contact."""
        if self.ended or self.organisation_id is None:
            return None
        if self.welfare_status is None:
            timer, due_at, stamped = TIMER_RECEIVED, self.received_due_at, self.received_overdue_at
        elif self.welfare_status in AWAITING_CONTACT:
            timer, due_at, stamped = (
                TIMER_FIRST_CONTACT,
                self.contact_due_at,
                self.contact_overdue_at,
            )
        else:
            return None
        if due_at is None or due_at > now or stamped is not None:
            return None
        return timer, due_at

    def mark_overdue(self, now: datetime) -> Outcome:
        """Stamp the timer that ran out, once; the GP's Task shows the delay."""
        due = self.due_timer(now)
        if due is None or self.organisation_id is None:
            return ()
        timer, due_at = due
        if timer == TIMER_RECEIVED:
            self.received_overdue_at = now
        else:
            self.contact_overdue_at = now
        return (Overdue(self.referral_id, self.organisation_id, timer, due_at),)

    @property
    def _has_ended(self) -> str:
        return f"the referral has ended ({self.status.value})"


def events_of(outcome: Outcome) -> Events:
    """What an outcome asks the caller to record: nothing when it was refused."""
    return () if isinstance(outcome, Refusal) else outcome


def verdict(outcome: Outcome) -> Verdict:
    """The outcome as the services' older answer: apply, harmless repeat, or problem."""
    if isinstance(outcome, Refusal):
        return Verdict(False, outcome.problem, outcome.detail)
    return Verdict(apply=bool(outcome))


def _answer(verdict: Verdict) -> Outcome:
    """A verdict that applies nothing: a refusal with its problem, or a harmless repeat."""
    if verdict.problem is None:
        return ()
    return Refusal(verdict.problem, verdict.detail)


def _welfare(value: str | None) -> WelfareStatus | None:
    return WelfareStatus(value) if value else None
