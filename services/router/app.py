"""Composition root of the router: the directory, the ledger's engine, the broker and the
handler of ``brug.referrals.submitted.v1`` (``services/router/handlers.py``).

Nothing is read or connected at import: ``create_app`` reads the directory (and fails
loudly when it is invalid), the engine connects on first use and the broker on start.
"""

from __future__ import annotations

from faststream import FastStream

from adapters.database import make_async_engine
from adapters.directory import WatchedDirectory
from adapters.runtime import configure_logging, make_app, make_broker
from services.router import SERVICE
from services.router.handlers import Routing, submitted_router
from services.router.settings import RouterSettings


def create_app(settings: RouterSettings | None = None) -> FastStream:
    settings = settings or RouterSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    engine = make_async_engine(settings.database_url)
    routing = Routing(
        engine=engine,
        directory=WatchedDirectory(settings.directory_path),
        details_base_url=settings.details_base_url,
    )
    broker = make_broker(settings, service=SERVICE)
    broker.include_router(submitted_router(routing, workers=settings.router_workers))
    app = make_app(
        broker,
        service=SERVICE,
        description="Assigns submitted referrals to the welfare organisation serving the "
        "patient's municipality and publishes them on that organisation's topic.",
    )

    @app.after_shutdown
    async def _close_database() -> None:
        await engine.dispose()

    return app
