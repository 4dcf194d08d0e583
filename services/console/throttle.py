"""The login throttle, kept in the ledger so a restart does not forget it and every replica
shares it. Each attempt is written down *before* the password is checked (one row in
``login_failures``) and removed only when the password proves right, so parallel guesses
count too. Within the window, ``per_user`` failures block that user name, from whatever
address; ``per_address`` failures from one source address block that address, across user
names. A block lasts until enough failures have aged out of the window; attempts refused
by a block are not counted, so a block never outlives the window. A successful login
clears that user name's failures.

Failed logins (``authentication-failed``, as at the API edges, actor ``console``) and the
start of a block (``console-login-blocked``) are audited (the user name only when it names an
operator: a mistyped password in the name field stays out of the audit trail and the log;
no passwords, ever). The log carries no source address."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import structlog
from sqlalchemy import Connection, delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.ledger.repository import Ledger
from adapters.ledger.tables import login_failures
from services.console import SERVICE

log = structlog.get_logger(f"brug.{SERVICE}")

Scope = Literal["user", "address"]
# pg_advisory_xact_lock(class, key): one class per scope, so a user name and an address
# never share a lock; the check and the insert of one name (and one address) are serial.
_LOCK_CLASS: dict[Scope, int] = {"user": 7_401, "address": 7_402}
_SCOPES: tuple[Scope, ...] = ("user", "address")  # locked in this order: no deadlock
_FIELD = 64  # the columns' width; no operator name is longer


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Blocked:
    scope: Scope
    wait: timedelta


@dataclass(frozen=True)
class Attempt:
    """A login attempt let through and written down as a failure until it succeeds."""

    username: str
    address: str
    # The scopes this attempt blocks if its password is wrong: it reaches their limit.
    blocks: tuple[Scope, ...]


class LoginThrottle:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        per_user: int,
        per_address: int,
        window: timedelta,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.engine = engine
        self.limits: dict[Scope, int] = {"user": per_user, "address": per_address}
        self.window = window
        self.clock = clock

    async def attempt(self, username: str, address: str) -> Attempt | Blocked:
        """Blocked, or the attempt written down (as a failure, until ``succeeded``)."""
        keys: dict[Scope, str] = {"user": _key(username), "address": address[:_FIELD]}
        now = self.clock()

        def check_and_count(connection: Connection) -> Attempt | Blocked:
            for scope in _SCOPES:
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:class, hashtext(:key))"),
                    {"class": _LOCK_CLASS[scope], "key": keys[scope]},
                )
            connection.execute(
                delete(login_failures).where(login_failures.c.failed_at <= now - self.window)
            )
            blocks: list[Scope] = []
            for scope in _SCOPES:
                recent = self._recent(connection, scope, keys[scope], now)
                if len(recent) >= self.limits[scope]:
                    # Blocked until the limit-th most recent failure ages out.
                    return Blocked(scope, recent[-1] + self.window - now)
                if len(recent) + 1 >= self.limits[scope]:
                    blocks.append(scope)
            connection.execute(
                insert(login_failures).values(
                    username=keys["user"], source_address=keys["address"], failed_at=now
                )
            )
            return Attempt(keys["user"], keys["address"], tuple(blocks))

        async with self.engine.begin() as connection:
            return await connection.run_sync(check_and_count)

    async def failed(self, attempt: Attempt, operator: str | None) -> None:
        """Audits the failure (and a block it starts); ``operator``: the user name if it
        names an operator, else None."""
        detail = {"username": operator, "source_address": attempt.address}

        def audit(connection: Connection) -> None:
            ledger = Ledger(connection)
            ledger.audit(
                actor="console", action="authentication-failed", referral_id=None, detail=detail
            )
            for scope in attempt.blocks:
                ledger.audit(
                    actor="console",
                    action="console-login-blocked",
                    referral_id=None,
                    detail={**detail, "scope": scope, "minutes": self.window // _MINUTE},
                )

        async with self.engine.begin() as connection:
            await connection.run_sync(audit)
        log.warning("console login refused", operator=operator)
        for scope in attempt.blocks:
            log.warning("console login blocked", scope=scope, operator=operator)

    async def succeeded(self, attempt: Attempt) -> None:
        """Clears the user name's failures, this attempt's among them."""
        async with self.engine.begin() as connection:
            await connection.execute(
                delete(login_failures).where(login_failures.c.username == attempt.username)
            )

    def _recent(
        self, connection: Connection, scope: Scope, key: str, now: datetime
    ) -> list[datetime]:
        """The newest failures of ``key``, at most the limit, newest first."""
        column = login_failures.c.username if scope == "user" else login_failures.c.source_address
        query = (
            select(login_failures.c.failed_at)
            .where(column == key, login_failures.c.failed_at > now - self.window)
            .order_by(login_failures.c.failed_at.desc())
            .limit(self.limits[scope])
        )
        return list(connection.execute(query).scalars())


_MINUTE = timedelta(minutes=1)


def _key(username: str) -> str:
    """A user name as counted: case does not make another name."""
    return username.strip().lower()[:_FIELD]
