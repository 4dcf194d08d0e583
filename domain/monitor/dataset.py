"""One referral's row of the minimal dataset, and how each event moves it.

The row (``MonitorState``) holds a little more than the published record: the day of
referral (published as its month plus day counts), the welfare side's last status and
sequence (to apply statuses the way the ledger does, ``domain/status_machine.judge``), and
the welfare ending and the GP's withdrawal apart (events on different topics may arrive in
either order; the earlier ending wins, so a replay gives the same row in any interleaving).

Every step is idempotent: a redelivered event leaves the row as it was.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from uuid import UUID

from contracts.cloudevents import EventData
from contracts.codes import AgeBand, ReferrerDiscipline, SubmissionChannel, Urgency, WorTheme
from contracts.events import (
    FeedbackReceivedByGp,
    ReferralCreated,
    ReferralOverdue,
    ReferralStatusReported,
    ReferralSubmitted,
    ReferralWithdrawn,
    SignalRaised,
)
from contracts.events.referral import ServiceLevelTimer
from contracts.events.status import (
    ActivityKind,
    DeclineReason,
    PositiveHealthDimension,
    SignalKind,
    WelfareStatus,
)
from contracts.monitor import (
    POSITIVE_HEALTH_FIELDS,
    EndStatus,
    MonitorRecord,
)
from domain.status_machine import judge

W = WelfareStatus

# The events the monitor reads; anything else on its topics is not its business.
MONITORED_EVENTS: tuple[type[EventData], ...] = (
    ReferralSubmitted,
    ReferralCreated,
    ReferralWithdrawn,
    FeedbackReceivedByGp,
    ReferralStatusReported,
    SignalRaised,
    ReferralOverdue,
)

_WELFARE_END: dict[WelfareStatus, EndStatus] = {
    W.COMPLETED: EndStatus.COMPLETED,
    W.DECLINED: EndStatus.DECLINED,
    W.UNREACHABLE: EndStatus.UNREACHABLE,
    W.WITHDRAWN_BY_PATIENT: EndStatus.WITHDRAWN_BY_PATIENT,
}
# Any status means the organisation had the referral; these mean it took it on, and that
# the coach had reached the person: a case system may skip a step, the funnel counts it.
_ACCEPTED = frozenset({W.ACCEPTED, W.FIRST_CONTACT, W.IN_PROGRESS, W.COMPLETED})
_CONTACTED = frozenset({W.FIRST_CONTACT, W.IN_PROGRESS, W.COMPLETED})


def referral_pseudonym(referral_id: UUID, key: str) -> str:
    """64 hex characters: HMAC-SHA256 of the referral id under the monitor key. Without
    the key nobody can tell which referral a row is, or find a referral's row."""
    message = b"brug:monitor:referral:v1:" + str(referral_id).encode("ascii")
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def _earliest(current: date | None, candidate: date) -> date:
    return candidate if current is None or candidate < current else current


@dataclass(frozen=True)
class MonitorState:
    """One referral's row as the monitor keeps it (``adapters/monitor/tables.py``)."""

    pseudonym: str
    submitted_on: date | None = None
    municipality_code: str | None = None
    organisation_id: str | None = None
    referrer_discipline: ReferrerDiscipline = ReferrerDiscipline.UNKNOWN
    channel: SubmissionChannel = SubmissionChannel.UNKNOWN
    age_band: AgeBand | None = None
    themes: tuple[WorTheme, ...] = ()
    urgency: Urgency | None = None
    welfare_status: WelfareStatus | None = None
    status_sequence: int = 0
    received_on: date | None = None
    accepted_on: date | None = None
    first_contact_on: date | None = None
    welfare_ended_on: date | None = None
    welfare_end: EndStatus | None = None
    decline_reason: DeclineReason | None = None
    gp_withdrawn_on: date | None = None
    activity_kinds: tuple[ActivityKind, ...] = ()
    feedback_to_gp_on: date | None = None
    feedback_to_gp_channel: str | None = None
    overdue_received: bool = False
    overdue_first_contact: bool = False
    signal_kinds: tuple[SignalKind, ...] = ()
    positive_health_consented: bool = False
    positive_health_change: dict[PositiveHealthDimension, int] = field(default_factory=dict)

    # -- the ending, whichever side's came first ------------------------------------------

    @property
    def end_status(self) -> EndStatus | None:
        if self.gp_withdrawn_on is not None and (
            self.welfare_ended_on is None or self.gp_withdrawn_on < self.welfare_ended_on
        ):
            return EndStatus.WITHDRAWN_BY_GP
        return self.welfare_end

    @property
    def ended_on(self) -> date | None:
        if self.end_status is EndStatus.WITHDRAWN_BY_GP:
            return self.gp_withdrawn_on
        return self.welfare_ended_on

    def record(self) -> MonitorRecord:
        """The published record (``contracts/monitor``)."""
        completed = self.end_status is EndStatus.COMPLETED
        return MonitorRecord(
            pseudonym=self.pseudonym,
            referral_month=self.submitted_on.strftime("%Y-%m") if self.submitted_on else "0001-01",
            municipality_code=self.municipality_code,
            organisation_id=self.organisation_id,
            referrer_discipline=self.referrer_discipline,
            channel=self.channel,
            age_band=self.age_band,
            themes=sorted(self.themes),
            urgency=self.urgency,
            received_on=self.received_on,
            accepted_on=self.accepted_on,
            first_contact_on=self.first_contact_on,
            ended_on=self.ended_on,
            days_to_first_contact=_days(self.submitted_on, self.first_contact_on),
            end_status=self.end_status,
            decline_reason=self.decline_reason if self.end_status is EndStatus.DECLINED else None,
            activity_kinds=sorted(self.activity_kinds) if completed else [],
            feedback_to_gp_on=self.feedback_to_gp_on,
            feedback_to_gp_channel=self.feedback_to_gp_channel,
            days_to_feedback_to_gp=_days(self.submitted_on, self.feedback_to_gp_on),
            overdue_received=self.overdue_received,
            overdue_first_contact=self.overdue_first_contact,
            signal_kinds=sorted(self.signal_kinds),
            positive_health_consented=self.positive_health_consented and completed,
            **{
                POSITIVE_HEALTH_FIELDS[dimension]: change if completed else None
                for dimension, change in self.positive_health_change.items()
            },
        )


def _days(start: date | None, end: date | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, (end - start).days)


def _day(moment: datetime) -> date:
    return moment.date() if moment.tzinfo is None else moment.astimezone(UTC).date()


def project(state: MonitorState, event: EventData) -> MonitorState:
    """The row after ``event``; the same row again for an event it has already seen."""
    match event:
        case ReferralSubmitted():
            return replace(
                state,
                submitted_on=_day(event.submitted_at),
                municipality_code=event.municipality_code,
                referrer_discipline=event.referrer_discipline or ReferrerDiscipline.UNKNOWN,
                channel=event.channel or SubmissionChannel.UNKNOWN,
                age_band=event.age_band,
                themes=tuple(sorted(set(event.themes))),
                urgency=event.urgency,
            )
        case ReferralCreated():
            return replace(
                state,
                organisation_id=event.organisation_id,
                municipality_code=state.municipality_code or event.municipality_code,
                submitted_on=state.submitted_on or _day(event.submitted_at),
                age_band=state.age_band or event.age_band,
                themes=state.themes or tuple(sorted(set(event.themes))),
                urgency=state.urgency or event.urgency,
            )
        case ReferralWithdrawn():
            return replace(
                state,
                organisation_id=state.organisation_id or event.organisation_id,
                gp_withdrawn_on=_earliest(state.gp_withdrawn_on, _day(event.withdrawn_at)),
            )
        case FeedbackReceivedByGp():
            day = _day(event.received_at)
            # The earliest receipt counts; of two on one day, pull before push.
            earlier = state.feedback_to_gp_on
            if earlier is not None and (
                earlier < day or (earlier == day and state.feedback_to_gp_channel == "pull")
            ):
                return state
            return replace(state, feedback_to_gp_on=day, feedback_to_gp_channel=event.channel)
        case ReferralStatusReported():
            return _status(state, event)
        case SignalRaised():
            return replace(
                state, signal_kinds=tuple(sorted(set(state.signal_kinds) | {event.kind}))
            )
        case ReferralOverdue():
            if event.timer is ServiceLevelTimer.RECEIVED:
                return replace(state, overdue_received=True)
            return replace(state, overdue_first_contact=True)
    return state


def _status(state: MonitorState, event: ReferralStatusReported) -> MonitorState:
    """A status as the ledger applies it: repeats, out-of-order and illegal transitions
    change nothing here either (the feedback service refuses them)."""
    verdict = judge(state.welfare_status, state.status_sequence, event.status, event.sequence)
    if not verdict.apply:
        return state
    day = _day(event.occurred_at)
    status = event.status
    changes: dict[str, object] = {
        "welfare_status": status,
        "status_sequence": event.sequence,
        "received_on": _earliest(state.received_on, day),
        "organisation_id": state.organisation_id or event.organisation_id,
    }
    if status in _ACCEPTED:
        changes["accepted_on"] = _earliest(state.accepted_on, day)
    if status in _CONTACTED:
        changes["first_contact_on"] = _earliest(state.first_contact_on, day)
    if status in _WELFARE_END:
        changes["welfare_ended_on"] = day
        changes["welfare_end"] = _WELFARE_END[status]
        changes["decline_reason"] = event.decline_reason
    if status is W.COMPLETED and event.outcome is not None:
        outcome = event.outcome
        changes["activity_kinds"] = tuple(sorted({a.kind for a in outcome.activities}))
        before, after = outcome.positive_health_before, outcome.positive_health_after
        consented = outcome.positive_health_consent and before is not None and after is not None
        changes["positive_health_consented"] = consented
        if consented and before is not None and after is not None:
            changes["positive_health_change"] = {
                dimension: after.scores[dimension] - before.scores[dimension]
                for dimension in PositiveHealthDimension
            }
    return replace(state, **changes)  # type: ignore[arg-type]
