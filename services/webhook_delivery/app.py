"""Composition root of webhook delivery: the directory's webhook organisations, the
ledger's engine, the broker with its queueing handler (``queueing.py``) and the delivery
loop (``delivery.py``), which publishes dead letters for what it parks.

Nothing is read or connected at import: ``create_app`` reads the directory, the engine
connects on first use, and the signing secrets are checked at start-up.
"""

from __future__ import annotations

from faststream import FastStream

from adapters.database import make_async_engine
from adapters.directory import load_directory
from adapters.runtime import configure_logging, make_app, make_broker
from adapters.runtime.service import run_in_background
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.directory import DeliveryChannel, WelfareDirectory, WelfareOrganisation
from contracts.events import DeadLetter
from services.webhook_delivery import SERVICE
from services.webhook_delivery.delivery import WebhookDelivery, require_secrets
from services.webhook_delivery.queueing import queue_router
from services.webhook_delivery.settings import WebhookSettings


def create_app(settings: WebhookSettings | None = None) -> FastStream:
    settings = settings or WebhookSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    organisations = webhook_organisations(load_directory(settings.directory_path))
    engine = make_async_engine(settings.database_url)
    broker = make_broker(settings, service=SERVICE)
    dead_letters = broker.publisher(
        topics.DEAD_LETTER,
        title=topics.DEAD_LETTER,
        description="Deliveries parked after the retry window. Key: referral id.",
        schema=CloudEvent[DeadLetter],
    )
    broker.include_router(queue_router(engine, organisations))
    app = make_app(
        broker,
        service=SERVICE,
        description="Delivers referrals to welfare organisations without Kafka by signed webhook.",
    )
    delivery = WebhookDelivery(engine, organisations, settings, dead_letters)

    @app.after_startup
    async def _refuse_unsigned() -> None:
        # Before the loop starts (hooks run in order): a missing secret stops the service.
        require_secrets(organisations.values())

    run_in_background(app, delivery.deliver_forever)

    @app.after_shutdown
    async def _close_database() -> None:
        await engine.dispose()

    return app


def webhook_organisations(directory: WelfareDirectory) -> dict[str, WelfareOrganisation]:
    return {o.id: o for o in directory.organisations if o.delivery is DeliveryChannel.WEBHOOK}
