"""What a municipality reads: ``GET /monitor/v1/municipalities/{code}/report`` (its own
figures only: another municipality's is a 403) and ``GET /monitor/v1/national/report``,
for a month, quarter or year (``period``) under a disclosure profile (``profile``, k5 or
cbs). Every figure after disclosure control (``domain/monitor/reports.py``: the same
protected cube the console and ``brug monitor report`` slice); every call audited,
granted or refused, with the client, the scope, the period and the profile only."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.clients import Client, ClientKind, ClientRegistry
from adapters.ledger.repository import Ledger
from adapters.monitor.store import MonitorStore
from adapters.problems import admit
from adapters.ratelimit import RateLimiter
from adapters.smart import EdgeAuthenticator
from contracts.monitor.report import MonitorReport
from domain.monitor.disclosure import profile_named
from domain.monitor.periods import Period
from domain.monitor.reports import NATIONAL, Scope, protect_year
from services.monitor_api import SERVICE
from services.monitor_api.problems import PROBLEM_JSON, Problem
from services.monitor_api.settings import MonitorApiSettings

router = APIRouter(prefix="/monitor/v1")
log = structlog.get_logger(f"brug.{SERVICE}")
NO_STORE = {"Cache-Control": "no-store"}
SCOPE_RESOURCE = "MonitorReport"  # system/MonitorReport.r (adapters/smart.py)


@dataclass(frozen=True)
class MonitorEdge:
    settings: MonitorApiSettings
    clients: ClientRegistry
    engine: AsyncEngine
    authenticator: EdgeAuthenticator
    limiter: RateLimiter

    def authenticate(self, request: Request) -> Client:
        """The municipality named by the bearer token: else 401; 429 over its rate limit;
        403 when its scopes do not include ``system/MonitorReport.r``."""
        principal = admit(
            self.authenticator,
            self.limiter,
            request.headers.get("authorization"),
            ClientKind.MUNICIPALITY,
            SCOPE_RESOURCE,
            "r",
        )
        return principal.client

    def choice(self, period: str, profile: str | None) -> tuple[Period, str]:
        """The period and profile asked for, or a 400."""
        try:
            chosen = Period.parse(period)
        except ValueError:
            raise Problem(
                400,
                "Bad Request",
                "period: a year (2026), a quarter (2026-Q4) or a month (2026-10)",
            ) from None
        allowed = self.settings.monitor_api_profiles
        name = profile or allowed[0]
        if name not in allowed:
            raise Problem(400, "Bad Request", f"profile: one of {', '.join(allowed)}")
        return chosen, name

    async def report(self, scope: Scope, period: Period, profile: str) -> dict[str, Any]:
        months = Period(period.year).months()
        async with self.engine.connect() as connection:
            records = await connection.run_sync(lambda c: MonitorStore(c).records(months))
        # The audit of the year's cube is CPU work: off the event loop.
        protected = await asyncio.to_thread(
            protect_year, records, period.year, profile_named(profile)
        )
        report = protected.report(scope, period)
        report["suppressed"] = [
            f"{figure}.{category}"
            for figure, categories in report["counts"].items()
            for category, value in categories.items()
            if value is None
        ]
        return MonitorReport.model_validate(report).model_dump(mode="json")

    async def audit(
        self, client: Client, scope: Scope, period: str, profile: str, ok: bool
    ) -> None:
        detail = {"scope": f"{scope[0]}:{scope[1]}", "period": period, "profile": profile}
        action = "read-monitor-report" if ok else "read-monitor-report-refused"
        async with self.engine.begin() as connection:
            await connection.run_sync(_audit, client.client_id, action, detail)
        log.info(action, client=client.client_id, **detail)


def _audit(connection: Connection, actor: str, action: str, detail: dict[str, str]) -> None:
    Ledger(connection).audit(actor=actor, action=action, referral_id=None, detail=detail)


_CBS_CODE = re.compile(r"GM[0-9]{4}")


def _readable(period: str) -> bool:
    try:
        Period.parse(period)
    except ValueError:
        return False
    return True


def monitor_edge(request: Request) -> MonitorEdge:
    edge: MonitorEdge = request.app.state.monitor_edge
    return edge


Edge = Annotated[MonitorEdge, Depends(monitor_edge)]
_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"description": why, "content": {PROBLEM_JSON: {}}}
    for status, why in (
        (400, "A period or profile that cannot be read."),
        (401, "No bearer token, or one that is not a municipality's."),
        (403, "Another municipality's figures, or a token without system/MonitorReport.r."),
        (429, "Over the client's rate limit."),
        (503, "The ledger does not answer; retry after Retry-After."),
    )
}


@router.get(
    "/municipalities/{code}/report",
    response_model=MonitorReport,
    responses=_PROBLEMS,
    summary="The caller's own municipality's figures, after disclosure control",
)
async def municipality_report(
    request: Request, edge: Edge, code: str, period: str, profile: str | None = None
) -> Response:
    client = edge.authenticate(request)
    if code != client.organisation:
        # Only what can be read goes into the audit row, never the caller's raw text.
        asked = code if _CBS_CODE.fullmatch(code) else "unreadable"
        shown = str(Period.parse(period)) if _readable(period) else "unreadable"
        await edge.audit(client, ("municipality", asked), shown, "", ok=False)
        raise Problem(403, "Forbidden", "a municipality reads its own figures only")
    scope: Scope = ("municipality", client.organisation)
    chosen, name = edge.choice(period, profile)
    body = await edge.report(scope, chosen, name)
    await edge.audit(client, scope, str(chosen), name, ok=True)
    return JSONResponse(body, headers=NO_STORE)


@router.get(
    "/national/report",
    response_model=MonitorReport,
    responses=_PROBLEMS,
    summary="The national figures, after disclosure control",
)
async def national_report(
    request: Request, edge: Edge, period: str, profile: str | None = None
) -> Response:
    client = edge.authenticate(request)
    chosen, name = edge.choice(period, profile)
    body = await edge.report(NATIONAL, chosen, name)
    await edge.audit(client, NATIONAL, str(chosen), name, ok=True)
    return JSONResponse(body, headers=NO_STORE)
