"""What one event from a case system does to the ledger, inside one transaction.

The referral aggregate (``domain/referral.py``) decides, in the order a sender can fix it:
the referral is this organisation's, the state machine allows the step, the GP has not
withdrawn it, the business status fits; this module writes down what it answered. Ids of
what Brug creates are derived from the event (uuid5), so a redelivered event finds its own
work already done.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from uuid import UUID

from adapters.ledger.repository import CommunicationRow, Ledger
from contracts.events.status import (
    DeclineReason,
    ReferralStatusReported,
    SignalRaised,
    StatusProblemCode,
    WelfareStatus,
)
from domain.events import StatusApplied
from domain.referral import Referral, Refusal, Report, verdict
from domain.status_machine import Verdict

_UNKNOWN = Verdict(False, StatusProblemCode.UNKNOWN_REFERRAL, "no such referral")
_IDS = uuid.UUID("6f1d3c1e-5c53-4d1b-9a55-0c2a2f0f4b7e")


def feedback_communication_id(referral_id: UUID) -> UUID:
    """The one closing Communication (terugkoppeling) of a referral."""
    return uuid.uuid5(_IDS, f"feedback/{referral_id}")


def signal_ids(referral_id: UUID, signal_id: UUID) -> tuple[UUID, UUID]:
    """The Communication, and the Task when the GP is asked to act, of one signal on one
    referral (a sender's signal id is its own: another referral may carry the same one)."""
    key = f"{referral_id}/{signal_id}"
    return uuid.uuid5(_IDS, f"signal/{key}"), uuid.uuid5(_IDS, f"signal-task/{key}")


def apply_status(
    ledger: Ledger, sender: str, reported: ReferralStatusReported, now: datetime
) -> Verdict:
    # Locked: a withdrawal at the same moment lands wholly before or after this report.
    row = ledger.referral_for_update(reported.referral_id)
    if row is None:
        return _UNKNOWN
    report = Report(reported.status, reported.sequence, reported.business_status)
    outcome = Referral.of(row).apply_report(sender, reported.organisation_id, report)
    if not isinstance(outcome, Refusal):
        for event in outcome:
            if isinstance(event, StatusApplied):
                _record_status(ledger, sender, reported, event, now)
    return verdict(outcome)


def _record_status(
    ledger: Ledger,
    sender: str,
    reported: ReferralStatusReported,
    applied: StatusApplied,
    now: datetime,
) -> None:
    outcome = reported.outcome.model_dump(mode="json") if reported.outcome else None
    ledger.record_welfare_status(
        applied.referral_id,
        welfare_status=applied.welfare_status.value,
        sequence=applied.sequence,
        task_status=applied.task_status,
        business_status=applied.business_status.value,
        reason=decline_text(reported),
        source=f"welfare:{sender}",
        at=now,
        outcome=outcome,
    )
    if outcome is not None:
        ledger.add_communication(
            CommunicationRow(
                communication_id=feedback_communication_id(applied.referral_id),
                referral_id=applied.referral_id,
                category="feedback",
                sender=sender,
                payload=outcome,
                sent_at=now,
            )
        )


def apply_signal(ledger: Ledger, sender: str, signal: SignalRaised, now: datetime) -> Verdict:
    row = ledger.referral_for_update(signal.referral_id)
    if row is None:
        return _UNKNOWN
    outcome = Referral.of(row).raise_signal(sender, signal.organisation_id, signal.signal_id)
    if isinstance(outcome, Refusal):
        return verdict(outcome)
    communication_id, task_id = signal_ids(signal.referral_id, signal.signal_id)
    # The row does not carry the referral's signal ids, so the ledger tells a repeat.
    stored = ledger.add_communication(
        CommunicationRow(
            communication_id=communication_id,
            referral_id=signal.referral_id,
            category="signal",
            sender=sender,
            payload={
                "kind": signal.kind.value,
                "text": signal.text,
                "action_requested": signal.action_requested,
            },
            sent_at=now,
            action_task_id=task_id if signal.action_requested else None,
        ),
        signal_id=signal.signal_id,
    )
    return Verdict(apply=stored)  # not stored: a repeat, harmless


def decline_text(reported: ReferralStatusReported) -> str | None:
    """What the GP reads in Task.statusReason when a referral is declined."""
    if reported.status is not WelfareStatus.DECLINED or reported.decline_reason is None:
        return None
    readable = {
        DeclineReason.NO_CAPACITY: "the welfare organisation has no capacity",
        DeclineReason.OUTSIDE_TARGET_GROUP: "outside the organisation's target group",
        DeclineReason.PATIENT_DECLINED: "the patient declined",
        DeclineReason.OTHER: reported.decline_text or "other",
    }
    return f"Declined: {readable[reported.decline_reason]}"
