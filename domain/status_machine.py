"""The welfare side's state machine, how each status shows on the GP's FHIR Task
(``Task.status`` + ``Task.businessStatus``), and when a referral has ended.

This is the one place those sets are defined; the SQL that filters on them derives its
strings from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.codes import ReferralStatus
from contracts.events.status import StatusProblemCode, WelfareStatus, WorBusinessStatus

W = WelfareStatus
B = WorBusinessStatus

# FHIR Task.status and the default WoR business status for each welfare status.
TASK_VIEW: dict[WelfareStatus, tuple[ReferralStatus, WorBusinessStatus]] = {
    W.RECEIVED: (ReferralStatus.RECEIVED, B.RECEIVED_BY_WELFARE),
    W.ACCEPTED: (ReferralStatus.ACCEPTED, B.ACCEPTED_BY_WELFARE),
    W.DECLINED: (ReferralStatus.REJECTED, B.DECLINED_BY_WELFARE),
    W.FIRST_CONTACT: (ReferralStatus.IN_PROGRESS, B.FIRST_CONTACT_MADE),
    W.IN_PROGRESS: (ReferralStatus.IN_PROGRESS, B.COACHING),
    W.ON_HOLD: (ReferralStatus.ON_HOLD, B.ON_HOLD),
    W.COMPLETED: (ReferralStatus.COMPLETED, B.COMPLETED_WITH_OUTCOME),
    W.UNREACHABLE: (ReferralStatus.FAILED, B.PATIENT_UNREACHABLE),
    W.WITHDRAWN_BY_PATIENT: (ReferralStatus.CANCELLED, B.WITHDRAWN_BY_PATIENT),
}

# Finer business statuses a sender may name, besides the default, per welfare status.
FITTING_BUSINESS_STATUS: dict[WelfareStatus, frozenset[WorBusinessStatus]] = {
    W.ACCEPTED: frozenset({B.INTAKE_SCHEDULED}),
    W.IN_PROGRESS: frozenset({B.LINKED_TO_ACTIVITY}),
}


def task_view(
    status: WelfareStatus, business_status: WorBusinessStatus | None
) -> tuple[ReferralStatus, WorBusinessStatus] | None:
    """Task.status and businessStatus for a status event; None if the business status
    does not fit the status."""
    task_status, default = TASK_VIEW[status]
    if business_status is None or business_status is default:
        return task_status, default
    if business_status in FITTING_BUSINESS_STATUS.get(status, frozenset()):
        return task_status, business_status
    return None


# -- the referral has ended ---------------------------------------------------------------

# The welfare statuses after which nothing moves. Only a referral not yet taken on can be
# declined; one that was taken on closes in one of the other three ways.
WELFARE_ENDINGS: frozenset[WelfareStatus] = frozenset(
    {W.DECLINED, W.COMPLETED, W.UNREACHABLE, W.WITHDRAWN_BY_PATIENT}
)
_CLOSINGS = WELFARE_ENDINGS - {W.DECLINED}

# A withdrawal, by the GP or (reported by the welfare side) by the patient, cancels the Task.
WITHDRAWN_TASK_STATUS = ReferralStatus.CANCELLED

# Task statuses of an ended referral: each welfare ending as the Task shows it, plus the
# GP's withdrawal. ``has_ended`` and every SQL filter on "still open" use this set.
ENDED_TASK_STATUSES: frozenset[ReferralStatus] = frozenset(
    {TASK_VIEW[ending][0] for ending in WELFARE_ENDINGS} | {WITHDRAWN_TASK_STATUS}
)


def has_ended(task_status: ReferralStatus) -> bool:
    """Completed, declined, unreachable, or withdrawn by either side."""
    return task_status in ENDED_TASK_STATUSES


def was_withdrawn(task_status: ReferralStatus) -> bool:
    """Withdrawn by the GP or by the patient: the coach has no more use for the details."""
    return task_status is WITHDRAWN_TASK_STATUS


def gp_withdrew(task_status: ReferralStatus, welfare_status: WelfareStatus | None) -> bool:
    """Cancelled by the GP (a patient's withdrawal, reported by the welfare side, is not)."""
    return was_withdrawn(task_status) and welfare_status is not W.WITHDRAWN_BY_PATIENT


# -- transitions --------------------------------------------------------------------------

# From each state (None: not yet heard from the welfare side), the states it may move to.
ALLOWED: dict[WelfareStatus | None, frozenset[WelfareStatus]] = {
    None: frozenset({W.RECEIVED, W.ACCEPTED, W.DECLINED}),
    W.RECEIVED: frozenset({W.ACCEPTED, W.DECLINED, W.UNREACHABLE, W.WITHDRAWN_BY_PATIENT}),
    W.ACCEPTED: frozenset({W.FIRST_CONTACT, W.IN_PROGRESS, W.ON_HOLD} | _CLOSINGS),
    W.FIRST_CONTACT: frozenset({W.IN_PROGRESS, W.ON_HOLD} | _CLOSINGS),
    W.IN_PROGRESS: frozenset({W.ON_HOLD} | _CLOSINGS),
    W.ON_HOLD: frozenset({W.IN_PROGRESS} | _CLOSINGS),
    **{ending: frozenset() for ending in WELFARE_ENDINGS},
}


@dataclass(frozen=True)
class Verdict:
    """Apply, ignore as a harmless repeat (no problem), or refuse with a problem."""

    apply: bool
    problem: StatusProblemCode | None = None
    detail: str = ""

    @property
    def duplicate(self) -> bool:
        return not self.apply and self.problem is None


def judge(
    current: WelfareStatus | None, last_sequence: int, incoming: WelfareStatus, sequence: int
) -> Verdict:
    """Apply, ignore as a repeat, or reject (with the reason the sender gets).

    Rules: a repeat (same status, a sequence already seen) is harmless and ignored; an older
    sequence with another status arrived out of order and is rejected, never applied over
    newer news; the same status under a newer sequence refines the business status (not
    after an ending); otherwise the transition must be in ``ALLOWED``.
    """
    if sequence <= last_sequence:
        if incoming is current:
            return Verdict(apply=False)
        return Verdict(
            False,
            StatusProblemCode.OUT_OF_ORDER,
            f"sequence {sequence} is not after {last_sequence}, already applied",
        )
    if incoming is current and ALLOWED[current]:
        return Verdict(apply=True)
    if incoming not in ALLOWED[current]:
        return Verdict(
            False,
            StatusProblemCode.ILLEGAL_TRANSITION,
            f"{current.value if current else 'requested'} cannot become {incoming.value}",
        )
    return Verdict(apply=True)
