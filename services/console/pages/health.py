"""The health page: Kafka, PostgreSQL, and each service's version and uptime as its
``/metrics`` tells them."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.console.flows import infrastructure_health, service_health
from services.console.web import ConsoleDep

router = APIRouter()


@router.get("/health", response_class=HTMLResponse)
async def health_page(request: Request, console: ConsoleDep) -> Response:
    me = await console.sessions.current(request)
    settings = console.settings
    services = await asyncio.gather(
        *(service_health(name, url) for name, url in sorted(settings.service_metrics_urls.items()))
    )
    # The health check is synchronous (psycopg), whatever driver the services use.
    infrastructure = await infrastructure_health(
        settings.kafka_bootstrap_servers, settings.database_url.replace("+asyncpg", "+psycopg")
    )
    return console.page(
        request, "health.html", me, services=services, infrastructure=infrastructure
    )
