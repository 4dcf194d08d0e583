"""Random sequences of GP, router and welfare actions against the Referral aggregate: its
invariants hold after every step, whatever the order, the sequences and the senders."""

from __future__ import annotations

import dataclasses
import os
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from contracts.codes import ReferralStatus
from contracts.events.status import WelfareStatus, WorBusinessStatus
from domain.events import (
    Assigned,
    Event,
    Held,
    Overdue,
    ReceiptRecorded,
    ReportPosted,
    SignalAccepted,
    StatusApplied,
    Withdrawn,
)
from domain.referral import Outcome, Referral, Refusal, Report
from domain.status_machine import ALLOWED, FITTING_BUSINESS_STATUS, TASK_VIEW, WELFARE_ENDINGS

ORGANISATIONS = ("dynamo-amsterdam", "swa-almere")
SIGNALS = tuple(uuid.UUID(int=n) for n in range(1, 4))
START = datetime(2025, 3, 3, 9, tzinfo=UTC)

organisations = st.sampled_from(ORGANISATIONS)
business_statuses = st.none() | st.sampled_from(list(WorBusinessStatus))


def task_status_agrees(referral: Referral) -> bool:
    """Task.status (and businessStatus) as the welfare status says, via TASK_VIEW."""
    if referral.gp_withdrew:
        return referral.status is ReferralStatus.CANCELLED
    if referral.welfare_status is None:
        # Not heard from the welfare side: requested, or on hold as unroutable.
        return referral.status in {ReferralStatus.REQUESTED, ReferralStatus.ON_HOLD}
    task_status, default = TASK_VIEW[referral.welfare_status]
    fitting = {default} | FITTING_BUSINESS_STATUS.get(referral.welfare_status, frozenset())
    return referral.status is task_status and referral.business_status in fitting


def ends(event: Event) -> bool:
    return isinstance(event, Withdrawn) or (
        isinstance(event, StatusApplied) and event.welfare_status in WELFARE_ENDINGS
    )


class ReferralLife(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.referral, submitted = Referral.submit(uuid.uuid4())
        assert len(submitted) == 1
        self.now = START
        self.endings = 0
        self.overdue_timers: list[str] = []
        self.gp_withdrew = False
        self.sequence = self.reported_sequence = self.seen_version = 0

    def act(self, expected: type, outcome: Outcome, before: Referral) -> None:
        """A refusal or a harmless repeat changes nothing and emits nothing; an accepted
        change emits exactly one event, of the kind the action is about."""
        if isinstance(outcome, Refusal) or outcome == ():
            assert self.referral == before, (outcome, before, self.referral)
            return
        assert len(outcome) == 1, outcome
        (event,) = outcome
        assert isinstance(event, expected), event
        assert event.referral_id == self.referral.referral_id
        assert self.referral != before, event
        self.endings += ends(event)
        if isinstance(event, Overdue):
            self.overdue_timers.append(event.timer)

    def snapshot(self) -> Referral:
        return dataclasses.replace(self.referral)

    # -- the router -------------------------------------------------------------------

    @initialize(routed=st.sampled_from([True, True, True, False]), organisation=organisations)
    def routed_at_once(self, routed: bool, organisation: str) -> None:
        """Most referrals are routed before anything else, so journeys get under way."""
        if routed:
            self.assign(organisation, received=1, contact=5)

    @rule(organisation=organisations, received=st.integers(0, 3), contact=st.integers(0, 8))
    def assign(self, organisation: str, received: int, contact: int) -> None:
        before = self.snapshot()
        outcome = self.referral.assign(
            organisation,
            received_due_at=self.now + timedelta(days=received),
            contact_due_at=self.now + timedelta(days=contact),
        )
        self.act(Assigned, outcome, before)

    @rule(now=st.integers(0, 2))
    def hold(self, now: int) -> None:
        if now:  # now and then: a hold or a withdrawal ends most journeys at once
            return
        before = self.snapshot()
        self.act(Held, self.referral.hold("no organisation serves GM9999"), before)

    # -- the welfare side -------------------------------------------------------------

    @rule(
        sender=organisations,
        names_another=st.booleans(),
        status=st.sampled_from(list(WelfareStatus)),
        step=st.integers(-2, 3),
        business=business_statuses,
    )
    def report_anything(
        self,
        sender: str,
        names_another: bool,
        status: WelfareStatus,
        step: int,
        business: WorBusinessStatus | None,
    ) -> None:
        named = ORGANISATIONS[1 - ORGANISATIONS.index(sender)] if names_another else sender
        report = Report(status, max(0, self.referral.sequence + step), business)
        before = self.snapshot()
        self.act(StatusApplied, self.referral.apply_report(sender, named, report), before)

    @rule(data=st.data(), step=st.integers(1, 2), refine=st.booleans())
    def report_a_next_step(self, data: st.DataObject, step: int, refine: bool) -> None:
        """The assigned organisation's own next step, so long journeys happen too."""
        choices = sorted(ALLOWED[self.referral.welfare_status])
        if not choices or self.referral.organisation_id is None:
            return
        status = data.draw(st.sampled_from(choices))
        finer = sorted(FITTING_BUSINESS_STATUS.get(status, frozenset()))
        business = finer[0] if refine and finer else None
        report = Report(status, self.referral.sequence + step, business)
        sender = self.referral.organisation_id
        before = self.snapshot()
        self.act(StatusApplied, self.referral.apply_report(sender, sender, report), before)

    @rule(
        sender=organisations,
        status=st.sampled_from(list(WelfareStatus)),
        step=st.integers(-1, 3),
        business=business_statuses,
    )
    def post_report(
        self, sender: str, status: WelfareStatus, step: int, business: WorBusinessStatus | None
    ) -> None:
        newest = max(self.referral.sequence, self.referral.reported_sequence)
        report = Report(status, max(0, newest + step), business)
        before = self.snapshot()
        self.act(ReportPosted, self.referral.post_report(sender, report), before)

    @rule(sender=organisations, signal_id=st.sampled_from(SIGNALS))
    def raise_signal(self, sender: str, signal_id: uuid.UUID) -> None:
        before = self.snapshot()
        self.act(SignalAccepted, self.referral.raise_signal(sender, sender, signal_id), before)

    # -- the GP side, time and receipts -----------------------------------------------

    @rule(now=st.integers(0, 2))
    def withdraw(self, now: int) -> None:
        if now:
            return
        before = self.snapshot()
        self.act(Withdrawn, self.referral.withdraw(), before)

    @rule(days=st.integers(0, 4))
    def time_passes(self, days: int) -> None:
        self.now += timedelta(days=days, minutes=1)
        before = self.snapshot()
        self.act(Overdue, self.referral.mark_overdue(self.now), before)

    @rule(version=st.integers(0, 12))
    def gp_reads(self, version: int) -> None:
        before = self.snapshot()
        self.act(ReceiptRecorded, self.referral.record_receipt(version), before)

    # -- invariants -------------------------------------------------------------------

    @invariant()
    def at_most_one_ending(self) -> None:
        assert self.endings <= 1

    @invariant()
    def ended_means_a_welfare_ending_or_the_gps_withdrawal(self) -> None:
        referral = self.referral
        assert referral.ended == (
            referral.gp_withdrew or referral.welfare_status in WELFARE_ENDINGS
        ), referral

    @invariant()
    def a_withdrawn_referral_never_becomes_active_again(self) -> None:
        if self.gp_withdrew:
            assert self.referral.gp_withdrew and self.referral.ended, self.referral
        self.gp_withdrew = self.referral.gp_withdrew

    @invariant()
    def the_task_status_agrees_with_the_welfare_status(self) -> None:
        assert task_status_agrees(self.referral), self.referral

    @invariant()
    def sequences_only_move_forward(self) -> None:
        referral = self.referral
        assert referral.sequence >= self.sequence
        assert referral.reported_sequence >= self.reported_sequence
        assert referral.gp_seen_version >= self.seen_version
        self.sequence, self.reported_sequence = referral.sequence, referral.reported_sequence
        self.seen_version = referral.gp_seen_version

    @invariant()
    def each_timer_fires_once(self) -> None:
        assert len(self.overdue_timers) == len(set(self.overdue_timers)), self.overdue_timers


# 300 lives of up to 20 steps in CI; a longer hunt: BRUG_AGGREGATE_EXAMPLES=20000 pytest this file.
ReferralLife.TestCase.settings = settings(
    max_examples=int(os.environ.get("BRUG_AGGREGATE_EXAMPLES", "300")),
    stateful_step_count=20,
    deadline=None,
)
TestReferralLife = ReferralLife.TestCase
