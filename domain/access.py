"""Access follows the referral: may the assigned organisation still read its details?

One rule, used by every channel that hands out the details (the social edge's GET and the
webhook POST, also when a dead letter is replayed). Pure: the referral's Task status, when
it ended, the clock and the grace period in; yes or no out. The ended statuses are those of
``status_machine`` and nowhere else.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from contracts.codes import ReferralStatus
from domain.status_machine import has_ended, was_withdrawn

NO_GRACE = timedelta(0)


def may_read_details(
    status: ReferralStatus,
    *,
    ended_at: datetime | None,
    now: datetime,
    grace: timedelta = NO_GRACE,
) -> bool:
    """While the referral is open, yes. Withdrawn (by the GP or the patient): no, at once,
    whatever the grace period. Otherwise ended (completed, declined, unreachable): only
    within ``grace`` after ``ended_at``; with no grace (the default), no. An ended referral
    whose end time is unknown gets no grace."""
    if was_withdrawn(status):
        return False
    if not has_ended(status):
        return True
    if ended_at is None or grace <= NO_GRACE:
        return False
    return now < ended_at + grace
