"""Event payloads, one module per flow. ``EVENT_TYPES`` lists every published type."""

from contracts.events.deadletter import DeadLetter
from contracts.events.gp import GpResourceChanged
from contracts.events.referral import (
    ReferralCreated,
    ReferralOverdue,
    ReferralSubmitted,
    ReferralWithdrawn,
)
from contracts.events.status import (
    FeedbackReceivedByGp,
    ReferralStatusProblem,
    ReferralStatusReported,
    SignalRaised,
)

EVENT_TYPES = (
    ReferralSubmitted,
    ReferralCreated,
    ReferralWithdrawn,
    ReferralStatusReported,
    ReferralStatusProblem,
    SignalRaised,
    FeedbackReceivedByGp,
    ReferralOverdue,
    GpResourceChanged,
    DeadLetter,
)

__all__ = [
    "EVENT_TYPES",
    "DeadLetter",
    "FeedbackReceivedByGp",
    "GpResourceChanged",
    "ReferralCreated",
    "ReferralOverdue",
    "ReferralStatusProblem",
    "ReferralStatusReported",
    "ReferralSubmitted",
    "ReferralWithdrawn",
    "SignalRaised",
]
