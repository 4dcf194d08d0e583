"""Event payloads, one module per flow. ``EVENT_TYPES`` lists every published type."""

from contracts.events.deadletter import DeadLetter
from contracts.events.referral import (
    ReferralCreated,
    ReferralStatusChanged,
    ReferralSubmitted,
    ReferralWithdrawn,
)
from contracts.events.status import ReferralStatusProblem, ReferralStatusReported

EVENT_TYPES = (
    ReferralSubmitted,
    ReferralCreated,
    ReferralWithdrawn,
    ReferralStatusChanged,
    ReferralStatusReported,
    ReferralStatusProblem,
    DeadLetter,
)

__all__ = [
    "EVENT_TYPES",
    "DeadLetter",
    "ReferralCreated",
    "ReferralStatusChanged",
    "ReferralStatusProblem",
    "ReferralStatusReported",
    "ReferralSubmitted",
    "ReferralWithdrawn",
]
