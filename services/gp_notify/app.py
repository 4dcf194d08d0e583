"""Composition root of the GP notify service: the client registry (which GP organisation a
changes topic's client acts for), the ledger's engine, the HTTP client for GP endpoints,
the broker, the change handler (``handlers.py``), the upkeep loop (``upkeep.py``) and the
retries (``retries.py``).

Nothing is read or connected at import: ``create_app`` reads the client registry, the
engine connects on first use, the broker on start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import httpx
from faststream import FastStream
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.clients import ClientKind, load_clients
from adapters.database import make_async_engine
from adapters.runtime import configure_logging, make_app, make_broker
from adapters.runtime.service import run_in_background
from domain.backoff import Backoff
from services.gp_notify import SERVICE
from services.gp_notify.endpoints import Endpoints
from services.gp_notify.handlers import Notifying, changes_router
from services.gp_notify.retries import Retries
from services.gp_notify.settings import NotifySettings
from services.gp_notify.upkeep import Upkeep


@dataclass(frozen=True)
class GpNotify:
    """The wired service; tests drive its parts."""

    app: FastStream
    broker: KafkaBroker
    engine: AsyncEngine
    endpoints: Endpoints
    upkeep: Upkeep
    retries: Retries


def wire(settings: NotifySettings | None = None) -> GpNotify:
    settings = settings or NotifySettings()
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    # httpx logs every request's URL at INFO: endpoints are the GP systems', not for our logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    gp_clients = [c for c in load_clients(settings.clients_path).clients if c.kind is ClientKind.GP]
    gp_organisations = {c.client_id: c.organisation for c in gp_clients}
    engine = make_async_engine(settings.database_url)
    endpoints = Endpoints(
        httpx.AsyncClient(timeout=settings.notify_timeout_seconds, follow_redirects=False),
        fhir_base_url=settings.fhir_base_url,
        attempts=settings.notify_attempts,
        retry_seconds=settings.notify_retry_seconds,
        loopback_allowed=[c.client_id for c in gp_clients if c.allow_loopback_http],
    )
    backoff = Backoff(
        base_seconds=settings.notify_backoff_base_seconds,
        cap_seconds=settings.notify_backoff_cap_seconds,
        give_up_after_seconds=settings.notify_give_up_seconds,
    )
    broker = make_broker(settings, service=SERVICE)
    broker.include_router(
        changes_router(
            Notifying(
                engine=engine,
                endpoints=endpoints,
                gp_organisations=gp_organisations,
                backoff=backoff,
            ),
            workers=settings.notify_workers,
        )
    )
    app = make_app(
        broker,
        service=SERVICE,
        description="Notifies GP systems' FHIR Subscriptions (rest-hook, id-only) of changes.",
    )
    upkeep = Upkeep(engine, endpoints, backoff, poll_seconds=settings.notify_poll_seconds)
    run_in_background(app, upkeep.run_forever)
    retries = Retries(
        engine,
        endpoints,
        backoff,
        poll_seconds=settings.notify_poll_seconds,
        keep_events=timedelta(days=settings.notify_events_keep_days),
    )
    run_in_background(app, retries.run_forever)

    @app.after_shutdown
    async def _close() -> None:
        await endpoints.aclose()
        await engine.dispose()

    return GpNotify(app, broker, engine, endpoints, upkeep, retries)


def create_app(settings: NotifySettings | None = None) -> FastStream:
    return wire(settings).app
