"""A monitor report as the municipalities' API publishes it (``GET /monitor/v1/…``,
``services/monitor_api``): one scope's figures for one period after disclosure control
(``domain/monitor/reports.py``). A suppressed cell is ``null`` and named in ``suppressed``:
"too few to show", never zero. Aggregates only: no record, pseudonym or referral id."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ReportScope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["municipality", "national"]
    code: str = Field(description="The CBS code (GMxxxx), or NL for the nation.")


class MonitorReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: ReportScope
    period: str = Field(description="A month (2026-10), quarter (2026-Q4) or year (2026).")
    disclosure: str = Field(description="The disclosure profile applied: k5 (default) or cbs.")
    counts: dict[str, dict[str, int | None]] = Field(
        description="figure → category → count; null: suppressed (too few to show)."
    )
    suppressed: list[str] = Field(
        description="Every suppressed count as figure.category, e.g. referrals.gp."
    )
    feedback_to_gp_within_30_days_share: float | None
    median_days_to_first_contact: float | None
    positive_health_mean_change: dict[str, float | None]
