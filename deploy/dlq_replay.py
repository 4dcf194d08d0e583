"""``brug dlq replay --reason … --since … [--until …] [--dry-run]``: every parked dead letter
with that reason that failed in the window, each replayed at most once
(``services/console/actions.py`` ``replay_dead_letters``). One line per letter, then a
summary; exit status 1 when a letter did not (certainly) get through."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from adapters.database import make_engine
from adapters.runtime import ServiceSettings
from domain.dead_letters import WindowRefused, replay_window
from services.console.actions import ActionRefused, Outcome, replay_dead_letters

FAILED = (Outcome.NOT_SENT, Outcome.UNCONFIRMED)


def replay_many(
    reason: str, since: str, until: str | None, *, note: str, dry_run: bool, actor: str
) -> None:
    now = datetime.now(UTC)
    try:
        window = replay_window(
            reason, _moment("since", since), None if until is None else _moment("until", until), now
        )
    except WindowRefused as refused:
        raise typer.BadParameter(str(refused)) from None
    settings = ServiceSettings()
    engine = make_engine(settings.database_url)
    try:
        done = replay_dead_letters(
            engine,
            settings.kafka_bootstrap_servers,
            window,
            actor=actor,
            note=note,
            sealer=settings.dead_letter_sealer(),
            dry_run=dry_run,
        )
    except ActionRefused as refused:
        raise RuntimeError(f"not replayed: {refused}") from None
    finally:
        engine.dispose()
    for letter in done.letters:
        typer.echo(
            f"{letter.dead_letter_id}  {letter.failed_at:%Y-%m-%d %H:%M:%S}  "
            f"{letter.outcome.value:<12} {letter.message}"
        )
    typer.echo(done.summary())
    if any(letter.outcome in FAILED for letter in done.letters):
        raise typer.Exit(1)


def _moment(name: str, text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"--{name} {text!r} is not an ISO 8601 time, e.g. 2026-12-01T08:00:00+01:00"
        ) from None
