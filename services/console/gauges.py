"""Lag and parked dead letters on ``/metrics``, kept current by a loop, so alerting needs
no browser. The gauges are registered once per process, at import (registering is no I/O);
the loop runs only while the app does."""

from __future__ import annotations

import asyncio

import structlog
from prometheus_client import Gauge

from services.console import SERVICE
from services.console.web import Console

log = structlog.get_logger(f"brug.{SERVICE}")

LAG = Gauge(
    "brug_consumer_lag",
    "Messages a consumer group has not yet handled, per topic (the console's view of Kafka).",
    ["group", "topic"],
)
PARKED = Gauge(
    "brug_dead_letters_parked", "Dead letters waiting for an operator, per reason.", ["reason"]
)


async def export_gauges(console: Console) -> None:
    while True:
        try:
            flows = await console.flows()
        except Exception as error:  # a failed look must not stop the loop
            log.warning("flows not measured", error_type=type(error).__name__)
        else:
            for lag in flows.lag:
                LAG.labels(lag.group, lag.topic).set(lag.lag)
            for reason in {reason for _, reason in flows.dead_letters}:
                PARKED.labels(reason).set(flows.dead_letters.get(("parked", reason), 0))
        await asyncio.sleep(console.settings.gauges_poll_seconds)
