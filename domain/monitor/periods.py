"""Reporting periods: a month (``2026-10``), a quarter (``2026-Q4``) or a year (``2026``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_PERIOD = re.compile(r"^(?P<year>[0-9]{4})(?:-(?:Q(?P<quarter>[1-4])|(?P<month>0[1-9]|1[0-2])))?$")


@dataclass(frozen=True, order=True)
class Period:
    year: int
    quarter: int | None = None
    month: int | None = None

    @classmethod
    def parse(cls, text: str) -> Period:
        found = _PERIOD.match(text.strip())
        if not found:
            raise ValueError(f"not a period (YYYY, YYYY-Qn or YYYY-MM): {text!r}")
        year = int(found["year"])
        if found["quarter"]:
            return cls(year, quarter=int(found["quarter"]))
        if found["month"]:
            return cls(year, month=int(found["month"]))
        return cls(year)

    @property
    def kind(self) -> str:
        return "month" if self.month else "quarter" if self.quarter else "year"

    def __str__(self) -> str:
        if self.month:
            return f"{self.year}-{self.month:02d}"
        if self.quarter:
            return f"{self.year}-Q{self.quarter}"
        return str(self.year)

    def months(self) -> tuple[str, ...]:
        """The ``YYYY-MM`` months it covers."""
        if self.month:
            numbers: range | tuple[int, ...] = (self.month,)
        elif self.quarter:
            numbers = range(3 * self.quarter - 2, 3 * self.quarter + 1)
        else:
            numbers = range(1, 13)
        return tuple(f"{self.year}-{number:02d}" for number in numbers)

    def contains(self, month: str) -> bool:
        return month in self.months()

    def parts(self) -> tuple[Period, ...]:
        """The periods it adds up from: a year its quarters, a quarter its months."""
        if self.month:
            return ()
        if self.quarter:
            return tuple(
                Period(self.year, month=m)
                for m in range(3 * self.quarter - 2, 3 * self.quarter + 1)
            )
        return tuple(Period(self.year, quarter=q) for q in range(1, 5))


def year_periods(year: int) -> tuple[Period, ...]:
    """The year, its quarters and its months: what one protected report covers."""
    whole = Period(year)
    quarters = whole.parts()
    return (whole, *quarters, *(month for quarter in quarters for month in quarter.parts()))
