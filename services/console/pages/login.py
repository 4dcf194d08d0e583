"""Logging in and out: a double-submit token guards the login form, the throttle (in the
ledger) blocks a user name or a source address after repeated failures, and a session
cookie is set only for a known operator."""

from __future__ import annotations

import asyncio
import math
from typing import Annotated
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console import SERVICE
from services.console.auth import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Forbidden,
    check_csrf,
    check_login_csrf,
    new_login_token,
)
from services.console.throttle import Blocked
from services.console.web import ConsoleDep

router = APIRouter()
log = structlog.get_logger(f"brug.{SERVICE}")


@router.get("/login", response_class=HTMLResponse)
async def login_page(
    request: Request, console: ConsoleDep, next: str = "/flows", failed: bool = False
) -> Response:
    token = new_login_token()
    response = console.page(
        request, "login.html", None, next=_local(next), token=token, failed=failed
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=console.settings.secure_cookies,
    )
    return response


@router.post("/login")
async def login(
    request: Request,
    console: ConsoleDep,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/flows",
) -> Response:
    check_login_csrf(request, csrf)
    registry = console.operators.current()
    known = username if registry.find(username) else None  # else perhaps a password
    throttle = console.login_throttle
    attempt = await throttle.attempt(username, request.client.host if request.client else "")
    if isinstance(attempt, Blocked):
        log.warning("console login throttled", scope=attempt.scope, operator=known)
        whom = "this user" if attempt.scope == "user" else "this address"
        minutes = max(1, math.ceil(attempt.wait.total_seconds() / 60))
        raise Forbidden(f"Too many failed logins for {whom}; try again in {minutes} min.")
    operator = await asyncio.to_thread(registry.authenticate, username, password)
    if operator is None:
        await throttle.failed(attempt, known)
        return RedirectResponse(f"/login?failed=1&next={quote(_local(next))}", status_code=303)
    await throttle.succeeded(attempt)
    token = await console.sessions.open(operator)
    log.info("console login", operator=operator.username, role=operator.role.value)
    response = RedirectResponse(_local(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=console.settings.secure_cookies,
        max_age=console.settings.session_idle_minutes * 60 * 16,  # the server decides expiry
    )
    response.delete_cookie(LOGIN_COOKIE)
    return response


@router.post("/logout")
async def logout(
    request: Request, console: ConsoleDep, csrf: Annotated[str, Form()] = ""
) -> Response:
    me = await console.sessions.current(request)
    check_csrf(me, csrf)
    await console.sessions.close(me)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


def _local(target: str) -> str:
    """Only paths on this console: a login link must not send an operator elsewhere."""
    return target if target.startswith("/") and not target.startswith("//") else "/flows"
