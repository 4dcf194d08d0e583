"""Composition root of the relay: a producer-only broker and the outbox relay loop.

Every domain event is written to the outbox in the transaction of the change it follows;
this service alone publishes them. Any number may run: they take turns batch by batch
(the claim locks the rows), so order per referral holds with replicas too.
"""

from __future__ import annotations

from datetime import timedelta

from faststream import FastStream

from adapters.database import make_async_engine
from adapters.outbox.relay import OutboxRelay, broker_sender
from adapters.runtime import configure_logging, make_app, make_broker
from adapters.runtime.service import run_in_background
from services.relay.settings import RelaySettings

SERVICE = "relay"


def create_app(settings: RelaySettings | None = None) -> FastStream:
    settings = settings or RelaySettings()
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    broker = make_broker(settings, service=SERVICE)
    engine = make_async_engine(settings.database_url)
    app = make_app(
        broker,
        service=SERVICE,
        description="Publishes every domain event from the ledger's outbox, in order per "
        "referral, with acks=all.",
    )
    relay = OutboxRelay(
        engine=engine,
        send=broker_sender(broker),
        database_url=settings.database_url,
        batch_size=settings.relay_batch_size,
        poll_seconds=settings.relay_poll_seconds,
        keep_published=timedelta(hours=settings.relay_keep_published_hours),
    )
    run_in_background(app, relay.run_forever)

    @app.after_shutdown
    async def _close_database() -> None:
        await engine.dispose()

    return app
