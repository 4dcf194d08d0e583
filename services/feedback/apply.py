"""What one event from a case system does to the ledger, inside one transaction.

Checks come first, in the order a sender can fix them: the referral exists, it is this
organisation's, the GP has not withdrawn it, the state machine allows the step, the
business status fits. Ids of what Brug creates are derived from the event (uuid5), so a
redelivered event finds its own work already done.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from uuid import UUID

from adapters.ledger.repository import CommunicationRow, Ledger, ReferralRow
from contracts.events.status import (
    DeclineReason,
    ReferralStatusReported,
    SignalRaised,
    StatusProblemCode,
    WelfareStatus,
)
from contracts.feedback import Verdict, judge_report, task_view

_IDS = uuid.UUID("6f1d3c1e-5c53-4d1b-9a55-0c2a2f0f4b7e")


def feedback_communication_id(referral_id: UUID) -> UUID:
    """The one closing Communication (terugkoppeling) of a referral."""
    return uuid.uuid5(_IDS, f"feedback/{referral_id}")


def signal_ids(signal_id: UUID) -> tuple[UUID, UUID]:
    """The Communication, and the Task when the GP is asked to act, of one signal."""
    return uuid.uuid5(_IDS, f"signal/{signal_id}"), uuid.uuid5(_IDS, f"signal-task/{signal_id}")


def apply_status(
    ledger: Ledger, sender: str, reported: ReferralStatusReported, now: datetime
) -> Verdict:
    row = ledger.referral(reported.referral_id)
    refused = _refusal(row, sender, reported.organisation_id)
    if refused is not None:
        return refused
    assert row is not None
    current = WelfareStatus(row.welfare_status) if row.welfare_status else None
    verdict = judge_report(
        current,
        row.status_sequence,
        gp_withdrew=row.withdrawn_by_gp,
        incoming=reported.status,
        sequence=reported.sequence,
        business_status=reported.business_status,
    )
    view = task_view(reported.status, reported.business_status)
    if not verdict.apply or view is None:
        return verdict
    task_status, business_status = view
    outcome = reported.outcome.model_dump(mode="json") if reported.outcome else None
    ledger.record_welfare_status(
        reported.referral_id,
        welfare_status=reported.status.value,
        sequence=reported.sequence,
        task_status=task_status,
        business_status=business_status.value,
        reason=decline_text(reported),
        source=f"welfare:{sender}",
        at=now,
        outcome=outcome,
    )
    if outcome is not None:
        ledger.add_communication(
            CommunicationRow(
                communication_id=feedback_communication_id(reported.referral_id),
                referral_id=reported.referral_id,
                category="feedback",
                sender=sender,
                payload=outcome,
                sent_at=now,
            )
        )
    return verdict


def apply_signal(ledger: Ledger, sender: str, signal: SignalRaised, now: datetime) -> Verdict:
    row = ledger.referral(signal.referral_id)
    refused = _refusal(row, sender, signal.organisation_id)
    if refused is not None:
        return refused
    assert row is not None
    if row.withdrawn_by_gp:
        return Verdict(False, StatusProblemCode.REFERRAL_ENDED, "the GP withdrew this referral")
    communication_id, task_id = signal_ids(signal.signal_id)
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


def _refusal(row: ReferralRow | None, sender: str, named_organisation: str) -> Verdict | None:
    if row is None:
        return Verdict(False, StatusProblemCode.UNKNOWN_REFERRAL, "no such referral")
    if sender != named_organisation or row.organisation_id != sender:
        return Verdict(
            False,
            StatusProblemCode.FOREIGN_ORGANISATION,
            "this referral is not assigned to the organisation that sent the event",
        )
    return None
