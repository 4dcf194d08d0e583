"""Composition root of the monitor: the ledger's engine, the broker and the handler of
Brug's event topics (``services/monitor/handlers.py``).

Nothing is connected at import: the engine connects on first use and the broker on start.
"""

from __future__ import annotations

from faststream import FastStream

from adapters.database import make_async_engine
from adapters.runtime import configure_logging, make_app, make_broker
from services.monitor import SERVICE
from services.monitor.handlers import Dataset, event_router
from services.monitor.settings import MonitorSettings


def create_app(settings: MonitorSettings | None = None) -> FastStream:
    settings = settings or MonitorSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    engine = make_async_engine(settings.database_url)
    broker = make_broker(settings, service=SERVICE)
    broker.include_router(event_router(Dataset(engine, settings.monitor_key.get_secret_value())))
    app = make_app(
        broker,
        service=SERVICE,
        description="Folds Brug's own events into the national monitor's pseudonymous "
        "minimal dataset, one row per referral (no names, BSN, free text, dates of birth or "
        "postcodes).",
    )

    @app.after_shutdown
    async def _close_database() -> None:
        await engine.dispose()

    return app
