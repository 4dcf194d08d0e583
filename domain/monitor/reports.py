"""The monitor's report figures from dataset records, and their disclosure control.

Every figure counts referrals by the **month of referral** (a referral made in October that
completes in December counts in October's completions), so months add up to quarters and
quarters to the year, and every referral is in exactly one municipality and one
organisation (``unrouted`` for one never routed).

One protected *cube* covers a whole year: every figure, for the nation, every municipality
and every organisation, for the year, its quarters and its months. A report for any scope
and period is a slice of it, so two reports never disagree about what is hidden.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from contracts.codes import ReferrerDiscipline, WorTheme
from contracts.events.status import DeclineReason, PositiveHealthDimension
from contracts.monitor import POSITIVE_HEALTH_FIELDS, EndStatus, MonitorRecord
from domain.monitor.disclosure import Profile, Relation, Shown, protect
from domain.monitor.periods import Period, year_periods

NATIONAL = ("national", "NL")
UNROUTED = "unrouted"
UNKNOWN_MUNICIPALITY = "unknown"
FEEDBACK_WITHIN_DAYS = 30

Scope = tuple[str, str]  # ("national", "NL") | ("municipality", "GM0363") | ("organisation", id)
Cell = tuple[str, str, Scope, str]  # figure, category, scope, period


@dataclass(frozen=True)
class Family:
    """A figure and its categories; ``total`` is the category the others add up to (None
    when they do not partition it, e.g. themes: a referral may have several)."""

    figure: str
    categories: tuple[str, ...]
    total: str | None = None


FAMILIES: tuple[Family, ...] = (
    Family(
        "referrals",
        ("all", *(d.value for d in ReferrerDiscipline)),
        total="all",
    ),
    Family("referrals_by_theme", tuple(t.value for t in WorTheme)),
    Family("funnel", ("received", "accepted", "first_contact", "completed")),
    Family("declines", ("all", *(r.value for r in DeclineReason)), total="all"),
    Family("overdue", ("received", "first_contact")),
    Family("feedback_to_gp", (f"within_{FEEDBACK_WITHIN_DAYS}_days",)),
    Family("gp_receipts", ("all", "pull", "push"), total="all"),
    Family("positive_health", ("consented",)),
)


SLACK = "slack"
"""The figure of the unpublished cells that turn the bounds below into sums."""

# One figure's count bounds others' from above, because each referral they count is one
# it counts too: the funnel narrows step by step (a declined referral was received and
# never accepted), a theme, an overdue timer or a GP receipt is about a referral. An
# attacker knows that: ``received - accepted`` bounds the declines, and with only a few
# more received than accepted the hidden declines could be pinned down. So each bound is a
# relation ``total = parts + slack`` whose slack is never published.
BOUNDS: tuple[tuple[tuple[str, str], tuple[tuple[str, str], ...]], ...] = (
    (("referrals", "all"), (("funnel", "received"),)),
    (("funnel", "received"), (("funnel", "accepted"), ("declines", "all"))),
    (("funnel", "accepted"), (("funnel", "first_contact"),)),
    (("funnel", "first_contact"), (("funnel", "completed"),)),
    (("funnel", "completed"), (("positive_health", "consented"),)),
    (("referrals", "all"), (("gp_receipts", "all"),)),
    (("gp_receipts", "all"), (("feedback_to_gp", f"within_{FEEDBACK_WITHIN_DAYS}_days"),)),
    (("referrals", "all"), (("overdue", "received"),)),
    (("referrals", "all"), (("overdue", "first_contact"),)),
    *((("referrals", "all"), (("referrals_by_theme", t.value),)) for t in WorTheme),
)


def _slack_category(bound: tuple[tuple[str, str], tuple[tuple[str, str], ...]]) -> str:
    (figure, category), parts = bound
    return f"{figure}.{category}-" + "-".join(f"{f}.{c}" for f, c in parts)


def _categories(record: MonitorRecord) -> dict[str, list[str]]:
    """figure → the categories this record counts in."""
    funnel = [
        step
        for step, reached in (
            ("received", record.received_on is not None),
            ("accepted", record.accepted_on is not None),
            ("first_contact", record.first_contact_on is not None),
            ("completed", record.end_status is EndStatus.COMPLETED),
        )
        if reached
    ]
    declined = record.end_status is EndStatus.DECLINED
    feedback = (
        record.days_to_feedback_to_gp is not None
        and record.days_to_feedback_to_gp <= FEEDBACK_WITHIN_DAYS
    )
    return {
        "referrals": ["all", record.referrer_discipline.value],
        "referrals_by_theme": sorted({theme.value for theme in record.themes}),
        "funnel": funnel,
        "declines": ["all", (record.decline_reason or DeclineReason.OTHER).value]
        if declined
        else [],
        "overdue": [
            name
            for name, flag in (
                ("received", record.overdue_received),
                ("first_contact", record.overdue_first_contact),
            )
            if flag
        ],
        "feedback_to_gp": [f"within_{FEEDBACK_WITHIN_DAYS}_days"] if feedback else [],
        "gp_receipts": ["all", record.feedback_to_gp_channel]
        if record.feedback_to_gp_channel
        else [],
        "positive_health": ["consented"] if _consented(record) else [],
    }


def _consented(record: MonitorRecord) -> bool:
    return record.positive_health_consented and record.ph_bodily_functions is not None


def _scopes(record: MonitorRecord) -> tuple[Scope, ...]:
    return (
        NATIONAL,
        ("municipality", record.municipality_code or UNKNOWN_MUNICIPALITY),
        ("organisation", record.organisation_id or UNROUTED),
    )


def scopes_of(records: Iterable[MonitorRecord]) -> list[Scope]:
    found = {scope for record in records for scope in _scopes(record)}
    return sorted(found | {NATIONAL})


def count_cells(records: Sequence[MonitorRecord], year: int) -> dict[Cell, int]:
    """Every cell of the year's cube, zeros included."""
    periods = year_periods(year)
    scopes = scopes_of(records)
    cells: dict[Cell, int] = {
        (family.figure, category, scope, str(period)): 0
        for family in FAMILIES
        for category in family.categories
        for scope in scopes
        for period in periods
    }
    for record in records:
        month = Period.parse(record.referral_month)
        if month.year != year:
            continue
        containing = [p for p in periods if p.contains(record.referral_month)]
        for figure, categories in _categories(record).items():
            for category in categories:
                for scope in _scopes(record):
                    for period in containing:
                        cells[(figure, category, scope, str(period))] += 1
    for bound in BOUNDS:
        (figure, category), parts = bound
        slacks = {
            (SLACK, _slack_category(bound), scope, str(period)): cells[
                (figure, category, scope, str(period))
            ]
            - sum(cells[(*part, scope, str(period))] for part in parts)
            for scope in scopes
            for period in periods
        }
        # Records the projection made always keep the bound; records made otherwise (an
        # import) may not, and then nobody can rely on it, so it is not a relation.
        if all(value >= 0 for value in slacks.values()):
            cells.update(slacks)
    return cells


def relations(cells: Iterable[Cell], year: int) -> list[Relation]:
    """Which cells add up to which: periods, scopes and categories."""
    keys = set(cells)
    figures = {(figure, category) for figure, category, _, _ in keys}
    scopes = sorted({scope for _, _, scope, _ in keys})
    periods = year_periods(year)
    found: list[Relation] = []
    for figure, category in sorted(figures):
        for scope in scopes:
            for period in periods:
                if period.parts():
                    found.append(
                        Relation(
                            (figure, category, scope, str(period)),
                            tuple((figure, category, scope, str(p)) for p in period.parts()),
                        )
                    )
        for period in periods:
            for kind in ("municipality", "organisation"):
                parts = tuple(
                    (figure, category, scope, str(period)) for scope in scopes if scope[0] == kind
                )
                if parts:
                    found.append(Relation((figure, category, NATIONAL, str(period)), parts))
    for bound in BOUNDS:
        (bounding, within), bounded = bound
        if (SLACK, _slack_category(bound)) not in figures:
            continue
        for scope in scopes:
            for period in periods:
                at = (scope, str(period))
                found.append(
                    Relation(
                        (bounding, within, *at),
                        (*((*b, *at) for b in bounded), (SLACK, _slack_category(bound), *at)),
                    )
                )
    for family in FAMILIES:
        if family.total is None:
            continue
        others = [c for c in family.categories if c != family.total]
        for scope in scopes:
            for period in periods:
                found.append(
                    Relation(
                        (family.figure, family.total, scope, str(period)),
                        tuple((family.figure, c, scope, str(period)) for c in others),
                    )
                )
    return found


@dataclass(frozen=True)
class ProtectedYear:
    year: int
    profile: str
    counts: dict[Cell, Shown]
    records: tuple[MonitorRecord, ...]
    minimum_group: int

    def report(self, scope: Scope, period: Period) -> dict[str, Any]:
        """One scope's figures for one period, as published (suppressed cells are None)."""
        if period.year != self.year:
            raise ValueError(f"{period} is not in {self.year}")
        counted = {
            family.figure: {
                category: self.counts[(family.figure, category, scope, str(period))].value
                for category in family.categories
            }
            for family in FAMILIES
            if (family.figure, family.categories[0], scope, str(period)) in self.counts
        }
        if not counted:
            counted = {f.figure: {c: None for c in f.categories} for f in FAMILIES}
        members = [
            record
            for record in self.records
            if period.contains(record.referral_month) and scope in _scopes(record)
        ]
        referrals = counted["referrals"]["all"]
        within = counted["feedback_to_gp"][f"within_{FEEDBACK_WITHIN_DAYS}_days"]
        return {
            "scope": {"kind": scope[0], "code": scope[1]},
            "period": str(period),
            "disclosure": self.profile,
            "counts": counted,
            "feedback_to_gp_within_30_days_share": _share(within, referrals),
            "median_days_to_first_contact": self._median(
                [r.days_to_first_contact for r in members if r.days_to_first_contact is not None]
            ),
            "positive_health_mean_change": self._mean_changes(
                [r for r in members if _consented(r)]
            ),
        }

    def _median(self, values: list[int]) -> float | None:
        if len(values) < self.minimum_group:
            return None
        return float(statistics.median(values))

    def _mean_changes(self, records: list[MonitorRecord]) -> dict[str, float | None]:
        enough = len(records) >= self.minimum_group
        return {
            dimension.value: round(
                statistics.fmean(getattr(r, POSITIVE_HEALTH_FIELDS[dimension]) for r in records), 1
            )
            if enough
            else None
            for dimension in PositiveHealthDimension
        }


def _share(numerator: int | None, denominator: int | None) -> float | None:
    """From the published counts only, so a share never tells more than they do."""
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def protect_year(records: Sequence[MonitorRecord], year: int, profile: Profile) -> ProtectedYear:
    in_year = tuple(r for r in records if r.referral_month.startswith(f"{year}-"))
    cells = count_cells(in_year, year)
    slack = [key for key in cells if key[0] == SLACK]
    shown = protect(cells, relations(cells, year), profile, unpublished=slack)
    return ProtectedYear(year, profile.name, shown, in_year, profile.minimum_group)


def ground_truth(records: Sequence[MonitorRecord], scope: Scope, period: Period) -> Counter[str]:
    """The unprotected counts of one scope and period (for tests and the generator)."""
    counts: Counter[str] = Counter()
    for record in records:
        if period.contains(record.referral_month) and scope in _scopes(record):
            for figure, categories in _categories(record).items():
                for category in categories:
                    counts[f"{figure}.{category}"] += 1
    return counts
