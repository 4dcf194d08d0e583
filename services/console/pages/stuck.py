"""What is stuck: parked dead letters and webhook deliveries, unroutable and overdue
referrals. Operators replay, requeue or discard them (``services/console/actions.py``,
shared with ``brug dlq``), dead letters also in bulk by reason and time window (each at
most once); a privacy officer may reveal a dead letter's original record."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Connection

from adapters.ledger.operations import Operations, original_of
from adapters.sealing import SealError
from domain.dead_letters import REASONS, REPLAYING, WindowRefused, replay_window
from services.console import SERVICE, actions, delivery_actions
from services.console.auth import Forbidden, check_csrf
from services.console.web import Console, ConsoleDep, audit, done

router = APIRouter()
log = structlog.get_logger(f"brug.{SERVICE}")

# Each action takes (the thing's id, actor=, note=) and answers an ActionResult.
Action = Callable[..., actions.ActionResult]


@router.get("/stuck", response_class=HTMLResponse)
async def stuck_page(request: Request, console: ConsoleDep) -> Response:
    me = await console.sessions.current(request)
    async with console.engine.connect() as connection:
        stuck = await connection.run_sync(_stuck)
    return console.page(request, "stuck.html", me, done=done(request), **stuck)


def _stuck(connection: Connection) -> dict[str, Any]:
    operations = Operations(connection)
    return {
        "dead_letters": operations.dead_letters("parked"),
        "resolved": [
            letter
            for state in ("replayed", "discarded")
            for letter in operations.dead_letters(state, limit=20)
        ],
        "replaying": operations.dead_letters(REPLAYING),
        "reasons": REASONS,
        "deliveries": operations.parked_deliveries(),
        "unroutable": operations.unroutable_referrals(),
        "overdue": operations.overdue_referrals(),
    }


@router.get("/dead-letters/{dead_letter_id}", response_class=HTMLResponse)
async def dead_letter_page(request: Request, console: ConsoleDep, dead_letter_id: str) -> Response:
    me = await console.sessions.current(request)
    async with console.engine.connect() as connection:
        letter = await connection.run_sync(lambda c: Operations(c).dead_letter(dead_letter_id))
    if letter is None:
        raise Forbidden("No such dead letter.")
    return console.page(request, "dead_letter.html", me, letter=letter, value=None)


@router.post("/dead-letters/{dead_letter_id}/reveal", response_class=HTMLResponse)
async def reveal_dead_letter(
    request: Request,
    console: ConsoleDep,
    dead_letter_id: str,
    reason: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    me = await console.revealer(request, csrf, reason)

    def read(connection: Connection) -> Any:
        letter = Operations(connection).dead_letter(dead_letter_id)
        if letter is not None:
            detail = {"reason": reason.strip()[:500], "dead_letter_id": dead_letter_id}
            audit(connection, me, "revealed-dead-letter", letter.referral_id, detail)
        return letter

    async with console.engine.begin() as connection:
        letter = await connection.run_sync(read)
    if letter is None:
        raise Forbidden("No such dead letter.")
    try:
        value = original_of(letter, console.sealer)
    except SealError as error:
        value = f"(the sealed original does not open: {error})"
    return console.page(request, "dead_letter.html", me, letter=letter, value=value)


@router.post("/dead-letters/bulk-replay")
async def bulk_replay(
    request: Request,
    console: ConsoleDep,
    reason: Annotated[str, Form()] = "",
    since: Annotated[str, Form()] = "",
    until: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
    dry_run: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Every parked dead letter with ``reason`` that failed in the window (the form's
    times are UTC, as the page shows them), each replayed at most once; or a dry run."""
    me = await console.sessions.current(request)
    check_csrf(me, csrf)
    try:
        window = replay_window(
            reason, _utc("since", since), _utc("until", until) if until else None, datetime.now(UTC)
        )
    except WindowRefused as refused:
        return console.page(
            request, "message.html", me, status=400, title="Not understood", text=str(refused)
        )
    settings = console.settings
    try:
        result = await asyncio.to_thread(
            actions.replay_dead_letters,
            console.sync_engine,
            settings.kafka_bootstrap_servers,
            window,
            actor=me.actor,
            note=note,
            sealer=console.sealer,
            dry_run=bool(dry_run),
        )
    except actions.ActionRefused as refused:
        log.info("operator bulk replay refused", operator=me.username, reason=window.reason)
        raise Forbidden(f"Not done: {refused}.") from None
    log.info(
        "operator bulk replay",
        operator=me.username,
        reason=window.reason,
        dry_run=result.dry_run,
        replayed=result.count(actions.Outcome.REPLAYED),
    )
    return RedirectResponse(f"/stuck?done={quote(result.summary())}", status_code=303)


def _utc(name: str, text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise WindowRefused(f"{name}: {text!r} is not a date and time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# Registered after ".../reveal", which the path template would match too.
@router.post("/dead-letters/{dead_letter_id}/{action}")
async def act_on_dead_letter(
    request: Request,
    console: ConsoleDep,
    dead_letter_id: str,
    action: str,
    note: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    chosen = _dead_letter_actions(console).get(action)
    return await _act(request, console, csrf, chosen, dead_letter_id, note, "dead letter")


@router.post("/deliveries/{event_id}/{action}")
async def act_on_delivery(
    request: Request,
    console: ConsoleDep,
    event_id: str,
    action: str,
    note: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    chosen = _delivery_actions(console).get(action)
    return await _act(request, console, csrf, chosen, event_id, note, "webhook delivery")


def _dead_letter_actions(console: Console) -> dict[str, Action]:
    bootstrap_servers = console.settings.kafka_bootstrap_servers
    return {
        "replay": partial(
            actions.replay_dead_letter,
            console.sync_engine,
            bootstrap_servers,
            sealer=console.sealer,
        ),
        "discard": partial(actions.discard_dead_letter, console.sync_engine),
    }


def _delivery_actions(console: Console) -> dict[str, Action]:
    return {
        "requeue": partial(delivery_actions.requeue_delivery, console.sync_engine),
        "discard": partial(delivery_actions.discard_delivery, console.sync_engine),
    }


async def _act(
    request: Request,
    console: Console,
    csrf: str,
    chosen: Action | None,
    target: str,
    note: str,
    kind: str,
) -> Response:
    me = await console.sessions.current(request)
    check_csrf(me, csrf)
    if chosen is None:
        raise Forbidden("Unknown action.")
    subject = f"{kind} {target}"
    try:
        result = await asyncio.to_thread(chosen, target, actor=me.actor, note=note)
    except actions.ActionRefused as refused:
        log.info("operator action refused", operator=me.username, subject=subject)
        raise Forbidden(f"Not done: {refused}.") from None
    log.info("operator action", operator=me.username, subject=subject, outcome=result.message)
    return RedirectResponse(f"/stuck?done={quote(f'{subject}: {result.message}')}", status_code=303)
