"""Operator sessions: a random token in an HttpOnly, SameSite=Strict cookie; only its hash is
stored, with an idle expiry. Every form that changes something carries the session's CSRF
token; the login form carries a double-submit token of its own."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.ledger.operations import Operations
from adapters.operators import Operator, OperatorRole

SESSION_COOKIE = "brug_console"
LOGIN_COOKIE = "brug_console_login"


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
    def __init__(self, engine: AsyncEngine, idle: timedelta) -> None:
        self.engine = engine
        self.idle = idle

    async def open(self, operator: Operator) -> str:
        token = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        async with self.engine.begin() as connection:
            await connection.run_sync(
                lambda c: Operations(c).open_session(
                    _hash(token),
                    operator.username,
                    operator.role.value,
                    secrets.token_urlsafe(32),
                    at=now,
                    expires_at=now + self.idle,
                )
            )
        return token

    async def current(self, request: Request) -> SignedIn:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            raise NotSignedIn
        now = datetime.now(UTC)
        async with self.engine.begin() as connection:
            session = await connection.run_sync(
                lambda c: Operations(c).live_session(
                    _hash(token), now=now, extend_to=now + self.idle
                )
            )
        if session is None:
            raise NotSignedIn
        return SignedIn(
            session.username, OperatorRole(session.role), session.csrf_token, _hash(token)
        )

    async def close(self, signed_in: SignedIn) -> None:
        async with self.engine.begin() as connection:
            await connection.run_sync(lambda c: Operations(c).close_session(signed_in.session_hash))


def check_csrf(signed_in: SignedIn, submitted: str) -> None:
    if not hmac.compare_digest(signed_in.csrf_token, submitted or ""):
        raise Forbidden("The form was not sent from this console (CSRF check failed).")


def check_login_csrf(request: Request, submitted: str) -> None:
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, submitted or ""):
        raise Forbidden("The login form expired; reload the page and try again.")


def new_login_token() -> str:
    return secrets.token_urlsafe(24)


class LoginThrottle:
    """After ``limit`` failed logins for one user name within ``window`` seconds, that name is
    refused for the rest of the window, right password or not: guessing gets slow.
    Kept in memory: one console process; a restart forgets (a replica set would share it)."""

    def __init__(self, limit: int = 5, window: float = 900.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, list[float]] = {}

    def blocked_for(self, username: str, now: float) -> float:
        """Seconds until ``username`` may try again (0: now)."""
        recent = self._recent(username, now)
        return self.window - (now - recent[0]) if len(recent) >= self.limit else 0.0

    def failed(self, username: str, now: float) -> None:
        self._failures[username.lower()] = [*self._recent(username, now), now]

    def succeeded(self, username: str) -> None:
        self._failures.pop(username.lower(), None)

    def _recent(self, username: str, now: float) -> list[float]:
        return [at for at in self._failures.get(username.lower(), []) if now - at < self.window]
