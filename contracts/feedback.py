"""The referral state machine on the welfare side, and how each status shows on the GP's
FHIR Task (``Task.status`` + ``Task.businessStatus``). Pure data and rules."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.codes import ReferralStatus
from contracts.events.status import StatusProblemCode, WelfareStatus

W = WelfareStatus

# WoR business status code (urn:brug:codesystem:wor-business-status) and FHIR Task.status.
TASK_VIEW: dict[WelfareStatus, tuple[ReferralStatus, str]] = {
    W.RECEIVED: (ReferralStatus.RECEIVED, "received-by-welfare"),
    W.ACCEPTED: (ReferralStatus.ACCEPTED, "accepted-by-welfare"),
    W.DECLINED: (ReferralStatus.REJECTED, "declined-by-welfare"),
    W.FIRST_CONTACT: (ReferralStatus.IN_PROGRESS, "first-contact-made"),
    W.IN_PROGRESS: (ReferralStatus.IN_PROGRESS, "coaching"),
    W.ON_HOLD: (ReferralStatus.ON_HOLD, "on-hold"),
    W.COMPLETED: (ReferralStatus.COMPLETED, "completed-with-outcome"),
    W.UNREACHABLE: (ReferralStatus.FAILED, "patient-unreachable"),
    W.WITHDRAWN_BY_PATIENT: (ReferralStatus.CANCELLED, "withdrawn-by-patient"),
}

_ENDINGS = {W.COMPLETED, W.UNREACHABLE, W.WITHDRAWN_BY_PATIENT}
# From each state (None: not yet heard from the welfare side), the states it may move to.
ALLOWED: dict[WelfareStatus | None, frozenset[WelfareStatus]] = {
    None: frozenset({W.RECEIVED, W.ACCEPTED, W.DECLINED}),
    W.RECEIVED: frozenset({W.ACCEPTED, W.DECLINED, W.UNREACHABLE, W.WITHDRAWN_BY_PATIENT}),
    W.ACCEPTED: frozenset({W.FIRST_CONTACT, W.IN_PROGRESS, W.ON_HOLD} | _ENDINGS),
    W.FIRST_CONTACT: frozenset({W.IN_PROGRESS, W.ON_HOLD} | _ENDINGS),
    W.IN_PROGRESS: frozenset({W.ON_HOLD} | _ENDINGS),
    W.ON_HOLD: frozenset({W.IN_PROGRESS} | _ENDINGS),
    W.DECLINED: frozenset(),
    W.COMPLETED: frozenset(),
    W.UNREACHABLE: frozenset(),
    W.WITHDRAWN_BY_PATIENT: frozenset(),
}


@dataclass(frozen=True)
class Verdict:
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
    newer news; otherwise the transition must be in ``ALLOWED``.
    """
    if sequence <= last_sequence:
        if incoming is current:
            return Verdict(apply=False)
        return Verdict(
            False,
            StatusProblemCode.OUT_OF_ORDER,
            f"sequence {sequence} is not after {last_sequence}, already applied",
        )
    if incoming not in ALLOWED[current]:
        return Verdict(
            False,
            StatusProblemCode.ILLEGAL_TRANSITION,
            f"{current.value if current else 'requested'} cannot become {incoming.value}",
        )
    return Verdict(apply=True)
