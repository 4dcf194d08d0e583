"""Operator sessions: a random token in an HttpOnly, SameSite=Strict cookie; only its hash is
stored, with an idle expiry and an absolute lifetime. Every request checks that the
session's operator is still in the operators file with the same role; a session whose
operator was removed or given another role ends there. Every form that changes something
carries the session's CSRF token; the login form carries a double-submit token of its own."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from fastapi import Request
from sqlalchemy import Connection, delete, func, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.ledger.operations import Operations
from adapters.ledger.repository import Ledger
from adapters.ledger.tables import operator_sessions
from adapters.operators import Operator, OperatorRole, WatchedOperators
from services.console import SERVICE
from services.console.throttle import utc_now

SESSION_COOKIE = "brug_console"
LOGIN_COOKIE = "brug_console_login"
log = structlog.get_logger(f"brug.{SERVICE}")


@dataclass(frozen=True)
class SignedIn:
    username: str
    role: OperatorRole
    csrf_token: str
    session_hash: str

    @property
    def actor(self) -> str:
        return f"operator:{self.username}"

    @property
    def may_reveal(self) -> bool:
        return self.role is OperatorRole.PRIVACY_OFFICER


class NotSignedIn(Exception):
    """Redirected to the login page."""


class Forbidden(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Sessions:
    def __init__(
        self,
        engine: AsyncEngine,
        operators: WatchedOperators,
        *,
        idle: timedelta,
        lifetime: timedelta,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.engine = engine
        self.operators = operators
        self.idle = idle
        self.lifetime = lifetime
        self.clock = clock

    async def open(self, operator: Operator) -> str:
        token = secrets.token_urlsafe(32)
        now = self.clock()
        async with self.engine.begin() as connection:
            await connection.run_sync(
                lambda c: Operations(c).open_session(
                    _hash(token),
                    operator.username,
                    operator.role.value,
                    secrets.token_urlsafe(32),
                    at=now,
                    expires_at=now + min(self.idle, self.lifetime),
                )
            )
        return token

    async def current(self, request: Request) -> SignedIn:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            raise NotSignedIn
        session_hash = _hash(token)
        now = self.clock()
        registry = self.operators.current()
        ends_at = operator_sessions.c.created_at + self.lifetime

        def live(connection: Connection) -> SignedIn | None:
            row = connection.execute(
                update(operator_sessions)
                .where(operator_sessions.c.session_hash == session_hash)
                .where(operator_sessions.c.expires_at > now)
                .where(ends_at > now)
                # Each use extends it (idle timeout), never past its lifetime.
                .values(expires_at=func.least(now + self.idle, ends_at))
                .returning(
                    operator_sessions.c.username,
                    operator_sessions.c.role,
                    operator_sessions.c.csrf_token,
                )
            ).one_or_none()
            if row is None:
                return None
            operator = registry.find(row.username)
            if operator is None or operator.role.value != row.role:
                _end_sessions(connection, row.username, operator)
                return None
            return SignedIn(row.username, operator.role, row.csrf_token, session_hash)

        async with self.engine.begin() as connection:
            signed_in = await connection.run_sync(live)
        if signed_in is None:
            raise NotSignedIn
        return signed_in

    async def close(self, signed_in: SignedIn) -> None:
        async with self.engine.begin() as connection:
            await connection.run_sync(lambda c: Operations(c).close_session(signed_in.session_hash))


def _end_sessions(connection: Connection, username: str, operator: Operator | None) -> None:
    """Ends every session of an operator removed from the file, or of their former role."""
    ended = delete(operator_sessions).where(operator_sessions.c.username == username)
    if operator is not None:
        ended = ended.where(operator_sessions.c.role != operator.role.value)
    connection.execute(ended)
    why = "operator removed" if operator is None else "role changed"
    Ledger(connection).audit(
        actor="console",
        action="console-session-ended",
        referral_id=None,
        detail={"username": username, "reason": why},
    )
    log.warning("console session ended", operator=username, reason=why)


def check_csrf(signed_in: SignedIn, submitted: str) -> None:
    if not hmac.compare_digest(signed_in.csrf_token, submitted or ""):
        raise Forbidden("The form was not sent from this console (CSRF check failed).")


def check_login_csrf(request: Request, submitted: str) -> None:
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, submitted or ""):
        raise Forbidden("The login form expired; reload the page and try again.")


def new_login_token() -> str:
    return secrets.token_urlsafe(24)
