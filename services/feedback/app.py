"""Composition root of the feedback service: the ledger's engine, the broker, the handler of
the organisations' status topics (``handlers.py``) and the timer loop (``timers.py``). What
GP systems are told of a change is queued by the ledger with the change; the relay sends it.

Nothing is read or connected at import: ``create_app`` reads the directory (one status
topic per organisation), the engine connects on first use and the broker on start.
"""

from __future__ import annotations

from dataclasses import dataclass

from faststream import FastStream
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.database import make_async_engine
from adapters.directory import load_directory
from adapters.runtime import configure_logging, make_app, make_broker
from adapters.runtime.service import run_in_background
from services.feedback import SERVICE
from services.feedback.handlers import CaseSystems, case_system_router, declare_gp_changes
from services.feedback.settings import FeedbackSettings
from services.feedback.timers import TimerWatch, declare_overdue


@dataclass(frozen=True)
class Feedback:
    """The wired service; tests drive its parts (the loops a round at a time)."""

    app: FastStream
    broker: KafkaBroker
    engine: AsyncEngine
    timers: TimerWatch


def wire(settings: FeedbackSettings | None = None) -> Feedback:
    settings = settings or FeedbackSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    directory = load_directory(settings.directory_path)
    engine = make_async_engine(settings.database_url)
    broker = make_broker(settings, service=SERVICE)
    declare_overdue(broker)
    declare_gp_changes(broker)
    timers = TimerWatch(engine, poll_seconds=settings.timer_poll_seconds)
    broker.include_router(
        case_system_router(
            CaseSystems(engine=engine),
            (organisation.id for organisation in directory.organisations),
            workers=settings.feedback_workers,
        )
    )
    app = make_app(
        broker,
        service=SERVICE,
        description="Applies welfare status events and signals to referrals under the state "
        "machine, tells GP systems what changed, and watches the service-level timers.",
    )
    run_in_background(app, timers.run_forever)

    @app.after_shutdown
    async def _close_database() -> None:
        await engine.dispose()

    return Feedback(app, broker, engine, timers)


def create_app(settings: FeedbackSettings | None = None) -> FastStream:
    return wire(settings).app
