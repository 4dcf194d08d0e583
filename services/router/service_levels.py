"""Service-level due dates, counted in Dutch working days (weekends and public holidays
skipped, via the ``holidays`` package) in Amsterdam time."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import holidays

from contracts.directory import ServiceLevels

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
_DUTCH_HOLIDAYS = holidays.country_holidays("NL")


def add_working_days(start: datetime, days: int) -> datetime:
    """The same wall-clock time ``days`` working days later (0: ``start`` itself)."""
    local = start.astimezone(AMSTERDAM)
    while days > 0:
        local += timedelta(days=1)
        if local.weekday() < 5 and local.date() not in _DUTCH_HOLIDAYS:
            days -= 1
    return local.astimezone(start.tzinfo)


def due_dates(routed_at: datetime, levels: ServiceLevels) -> tuple[datetime, datetime]:
    """When receipt, and when first contact, must have been reported."""
    return (
        add_working_days(routed_at, levels.received_within_working_days),
        add_working_days(routed_at, levels.first_contact_within_working_days),
    )
