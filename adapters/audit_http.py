"""The HTTP edges' part of the audit trail, as one ASGI middleware (``audit_requests``):

- the person a caller names in ``X-Brug-Person`` (the user at the GP system or the case
  system, e.g. ``uzi:012345678`` or an employee number; printable ASCII, at most 128
  characters, else ignored) is what ``Ledger.audit`` records as ``person`` for the request;
- every 401 the edge answers (no token, an unknown or a wrong kind of token) becomes an
  audit row ``authentication-failed``, result ``refused``, purpose ``security``: the edge,
  the method and the route, never a token, a header value other than the person, or a body.

Added after ``limit_bodies`` so it also sees the 401s answered before a body is read.
"""

from __future__ import annotations

import structlog
from fastapi import FastAPI
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.ledger.audit_trail import PERSON_HEADER, acting_person, person_named
from adapters.ledger.repository import Ledger

log = structlog.get_logger("brug.audit")
_HEADER = PERSON_HEADER.lower().encode("latin-1")


class AuditRequests:
    def __init__(self, app: ASGIApp, engine: AsyncEngine, edge: str) -> None:
        self.app, self.engine, self.edge = app, engine, edge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        named = next((v for k, v in scope.get("headers") or [] if k == _HEADER), None)
        token = acting_person.set(person_named(named.decode("latin-1")) if named else None)
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
            if status == 401:
                await self._refused(scope)
        finally:
            acting_person.reset(token)

    async def _refused(self, scope: Scope) -> None:
        detail = {"edge": self.edge, "method": scope["method"], "route": _route(scope)}
        try:
            async with self.engine.begin() as connection:
                await connection.run_sync(_audit_refusal, detail)
        except (SQLAlchemyError, OSError) as error:
            log.warning("failed authentication not audited", error=type(error).__name__)


def _audit_refusal(connection: Connection, detail: dict[str, str]) -> None:
    Ledger(connection).audit(
        actor="unauthenticated", action="authentication-failed", referral_id=None, detail=detail
    )


def _route(scope: Scope) -> str:
    """The matched route's template (no ids, no query); before routing, the first two
    segments of the path only (``/fhir/Task``, ``/social/v1``), at most 64 characters."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if isinstance(template, str):
        return template
    segments = [s for s in str(scope.get("path", "")).split("/") if s][:2]
    return ("/" + "/".join(segments))[:64]


def audit_requests(app: FastAPI, engine: AsyncEngine, edge: str) -> None:
    """Install the middleware on the edge's ``app`` (after ``limit_bodies``)."""
    app.add_middleware(AuditRequests, engine=engine, edge=edge)
