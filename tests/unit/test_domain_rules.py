"""The rules stated once in the domain: when a referral has ended, who it is assigned to,
what the GP's withdrawal means, and what each action answers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.codes import ReferralStatus
from contracts.events.status import StatusProblemCode, WelfareStatus, WorBusinessStatus
from domain.events import Assigned, Events, Overdue, ReportPosted, StatusApplied, Withdrawn
from domain.referral import Outcome, Referral, Refusal, Report, verdict
from domain.status_machine import ENDED_TASK_STATUSES, has_ended

R = ReferralStatus
W = WelfareStatus
ORG = "dynamo-amsterdam"
NOON = datetime(2025, 3, 3, 12, tzinfo=UTC)


def _routed(**fields: Any) -> Referral:
    return Referral(uuid.uuid4(), organisation_id=ORG, **fields)


def _events(outcome: Outcome) -> Events:
    assert not isinstance(outcome, Refusal), outcome
    return outcome


def test_the_ended_task_statuses_are_the_four_endings() -> None:
    assert {s.value for s in ENDED_TASK_STATUSES} == {
        "completed",
        "cancelled",
        "rejected",
        "failed",
    }
    assert [s for s in ReferralStatus if not has_ended(s)] == [
        R.REQUESTED,
        R.RECEIVED,
        R.ACCEPTED,
        R.IN_PROGRESS,
        R.ON_HOLD,
    ]


def test_only_the_assigned_organisation_is_the_caller_it_is_assigned_to() -> None:
    assert not Referral(uuid.uuid4()).assigned_to(ORG)
    assert not Referral(uuid.uuid4()).assigned_to("")
    assert _routed().assigned_to(ORG)
    assert not _routed().assigned_to("swa-almere")


def test_a_cancelled_task_is_the_gps_withdrawal_unless_the_patient_withdrew() -> None:
    by_gp = _routed(status=R.CANCELLED, welfare_status=W.ACCEPTED)
    by_patient = _routed(status=R.CANCELLED, welfare_status=W.WITHDRAWN_BY_PATIENT)
    assert by_gp.gp_withdrew and by_gp.withdrawn and by_gp.ended
    assert not by_patient.gp_withdrew and by_patient.withdrawn and by_patient.ended


def test_the_gp_withdraws_once_and_never_after_an_ending() -> None:
    referral = _routed(status=R.ACCEPTED, welfare_status=W.ACCEPTED, sequence=1)
    assert referral.withdraw() == (Withdrawn(referral.referral_id, ORG),)
    assert referral.withdraw() == ()  # a repeat: the organisation may be told again
    completed = _routed(status=R.COMPLETED, welfare_status=W.COMPLETED, sequence=3)
    refused = completed.withdraw()
    assert refused == Refusal(
        StatusProblemCode.REFERRAL_ENDED,
        "the referral has ended (completed); it can no longer be withdrawn",
    )
    assert completed.status is R.COMPLETED


def test_after_the_gps_withdrawal_a_report_or_signal_is_refused_but_a_repeat_is_harmless() -> None:
    referral = _routed(status=R.CANCELLED, welfare_status=W.ACCEPTED, sequence=1)
    later = referral.apply_report(ORG, ORG, Report(W.FIRST_CONTACT, 2))
    assert isinstance(later, Refusal) and later.problem is StatusProblemCode.REFERRAL_ENDED
    assert later.detail == "the GP withdrew this referral"
    assert referral.apply_report(ORG, ORG, Report(W.ACCEPTED, 1)) == ()
    signal = referral.raise_signal(ORG, ORG, uuid.uuid4())
    assert isinstance(signal, Refusal) and signal.problem is StatusProblemCode.REFERRAL_ENDED


@pytest.mark.parametrize(("sender", "named"), [("swa-almere", "swa-almere"), (ORG, "swa-almere")])
def test_a_report_from_or_naming_another_organisation_is_foreign(sender: str, named: str) -> None:
    outcome = _routed().apply_report(sender, named, Report(W.RECEIVED, 1))
    assert isinstance(outcome, Refusal)
    assert outcome.problem is StatusProblemCode.FOREIGN_ORGANISATION


def test_an_applied_report_moves_the_task_as_the_task_view_says() -> None:
    referral = _routed()
    report = Report(W.ACCEPTED, 1, WorBusinessStatus.INTAKE_SCHEDULED)
    (applied,) = _events(referral.apply_report(ORG, ORG, report))
    assert applied == StatusApplied(
        referral.referral_id, W.ACCEPTED, 1, R.ACCEPTED, WorBusinessStatus.INTAKE_SCHEDULED
    )
    assert (referral.status, referral.welfare_status, referral.sequence) == (
        R.ACCEPTED,
        W.ACCEPTED,
        1,
    )
    unfitting = referral.apply_report(ORG, ORG, Report(W.IN_PROGRESS, 2, WorBusinessStatus.ON_HOLD))
    assert isinstance(unfitting, Refusal)
    assert unfitting.problem is StatusProblemCode.UNFITTING_BUSINESS_STATUS


def test_a_post_is_judged_against_what_was_posted_before_it_was_applied() -> None:
    referral = _routed()
    assert referral.post_report(ORG, Report(W.RECEIVED, 1)) == (
        ReportPosted(referral.referral_id, W.RECEIVED, 1),
    )
    assert len(_events(referral.post_report(ORG, Report(W.ACCEPTED, 2)))) == 1
    late = referral.post_report(ORG, Report(W.RECEIVED, 1))
    assert isinstance(late, Refusal) and late.problem is StatusProblemCode.OUT_OF_ORDER
    assert referral.welfare_status is None  # posting is not applying


def test_a_held_referral_is_requested_again_once_assigned_and_the_first_assignment_stands() -> None:
    referral = Referral(uuid.uuid4())
    assert len(_events(referral.hold("no organisation serves GM9999"))) == 1
    assert referral.status is R.ON_HOLD
    assert referral.assign(ORG) == (Assigned(referral.referral_id, ORG, released_from_hold=True),)
    assert referral.status is R.REQUESTED
    assert referral.assign("swa-almere") == ()
    assert referral.organisation_id == ORG
    refused = referral.hold("directory changed")
    assert isinstance(refused, Refusal) and referral.status is R.REQUESTED


def test_a_withdrawn_referral_is_neither_assigned_nor_held() -> None:
    referral = Referral(uuid.uuid4(), status=R.CANCELLED)
    for outcome in (referral.assign(ORG), referral.hold("unroutable")):
        assert isinstance(outcome, Refusal) and outcome.problem is StatusProblemCode.REFERRAL_ENDED
    assert referral.organisation_id is None and referral.status is R.CANCELLED


def test_timers_fire_once_each_and_not_after_an_ending() -> None:
    referral = _routed(received_due_at=NOON, contact_due_at=NOON + timedelta(days=5))
    assert referral.mark_overdue(NOON - timedelta(minutes=1)) == ()
    assert referral.mark_overdue(NOON) == (Overdue(referral.referral_id, ORG, "received", NOON),)
    assert referral.mark_overdue(NOON + timedelta(hours=1)) == ()
    referral.apply_report(ORG, ORG, Report(W.RECEIVED, 1))
    week_later = NOON + timedelta(days=7)
    assert referral.due_timer(week_later) == ("first-contact", NOON + timedelta(days=5))
    referral.withdraw()
    assert referral.mark_overdue(week_later) == ()


def test_a_receipt_is_owed_once_per_newer_task_version_after_news_from_the_welfare_side() -> None:
    referral = _routed()
    assert referral.record_receipt(2) == ()  # nothing from the welfare side yet
    referral.apply_report(ORG, ORG, Report(W.RECEIVED, 1))
    assert len(_events(referral.record_receipt(3))) == 1
    assert referral.record_receipt(3) == () and referral.record_receipt(2) == ()


def test_the_outcome_reads_as_the_services_verdict() -> None:
    assert verdict(()).duplicate
    assert verdict((Withdrawn(uuid.uuid4(), None),)).apply
    refused = verdict(Refusal(StatusProblemCode.OUT_OF_ORDER, "late"))
    assert not refused.apply and refused.problem is StatusProblemCode.OUT_OF_ORDER
