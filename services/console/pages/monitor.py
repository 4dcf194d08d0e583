"""The monitor page: the figures a municipality, an organisation or the nation would see
(docs/MONITOR.md), after disclosure control, for a month, quarter or year: referrals per
month, the funnel, the feedback that reached the GP. Aggregates only, so any operator may
look; a cell too small to show is drawn as such, never as a number."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from adapters.monitor.store import MonitorStore
from contracts.monitor import MonitorRecord
from domain.monitor.disclosure import profile_named
from domain.monitor.periods import Period
from domain.monitor.reports import FAMILIES, NATIONAL, Scope, protect_year, scopes_of
from services.console.monitor_charts import bars
from services.console.web import ConsoleDep

router = APIRouter()
PROFILES = ("k5", "k10", "cbs")
_MUNICIPALITY = re.compile(r"GM[0-9]{4}")
_ORGANISATION = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")


@dataclass(frozen=True)
class Choice:
    period: Period
    scope: Scope
    profile: str


@router.get("/monitor", response_class=HTMLResponse)
async def monitor_page(
    request: Request,
    console: ConsoleDep,
    period: str = "",
    scope: str = "national",
    profile: str = "k5",
) -> Response:
    me = await console.sessions.current(request)
    async with console.engine.connect() as connection:
        records = await connection.run_sync(lambda c: MonitorStore(c).records())
    scopes = scopes_of(records)
    choice = _choice(period, scope, profile)
    if isinstance(choice, str):
        return console.page(
            request,
            "monitor.html",
            me,
            status=400,
            active="monitor",
            error=choice,
            report=None,
            scopes=scopes,
            form={"period": period, "scope": scope, "profile": profile},
            profiles=PROFILES,
        )
    view = _view(records, choice)
    return console.page(
        request,
        "monitor.html",
        me,
        active="monitor",
        error="",
        scopes=scopes,
        form={
            "period": str(choice.period),
            "scope": _scope_value(choice.scope),
            "profile": profile,
        },
        profiles=PROFILES,
        **view,
    )


def _choice(period: str, scope: str, profile: str) -> Choice | str:
    """The request's period, scope and profile, or why they cannot be read."""
    try:
        chosen = Period.parse(period) if period else _this_quarter()
    except ValueError:
        return "A period is a year (2026), a quarter (2026-Q4) or a month (2026-10)."
    if profile not in PROFILES:
        return f"A disclosure profile is one of {', '.join(PROFILES)}."
    if scope == "national":
        return Choice(chosen, NATIONAL, profile)
    kind, _, code = scope.partition(":")
    if kind == "municipality" and _MUNICIPALITY.fullmatch(code):
        return Choice(chosen, ("municipality", code), profile)
    if kind == "organisation" and _ORGANISATION.fullmatch(code):
        return Choice(chosen, ("organisation", code), profile)
    return "Choose the nation, a municipality (municipality:GM0363) or an organisation."


def _this_quarter() -> Period:
    today = datetime.now(UTC).date()
    return Period(today.year, quarter=(today.month - 1) // 3 + 1)


def _scope_value(scope: Scope) -> str:
    return "national" if scope == NATIONAL else f"{scope[0]}:{scope[1]}"


def _view(records: list[MonitorRecord], choice: Choice) -> dict[str, Any]:
    protected = protect_year(records, choice.period.year, profile_named(choice.profile))
    report = protected.report(choice.scope, choice.period)
    months = [
        Period(choice.period.year, month=number)
        for number in range(1, 13)
        if choice.period.contains(f"{choice.period.year}-{number:02d}")
    ]
    per_month = [
        (str(month), protected.report(choice.scope, month)["counts"]["referrals"]["all"])
        for month in months
    ]
    counts = report["counts"]
    funnel = [(step.replace("_", " "), counts["funnel"][step]) for step in counts["funnel"]]
    within = counts["feedback_to_gp"]["within_30_days"]
    return {
        "report": report,
        "families": [family.figure for family in FAMILIES],
        "per_month": bars(per_month, label="referrals per month of referral"),
        "funnel": bars(funnel, label="the funnel: referrals that reached each step"),
        "feedback": bars(
            [("referrals", counts["referrals"]["all"]), ("feedback within 30 days", within)],
            label="feedback that reached the GP within 30 days",
        ),
    }
