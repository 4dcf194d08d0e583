"""The service runtime every Brug service is built on: settings, JSON logging with
redaction, the Kafka broker (durable publish, commit after handling, dead letters),
signals (metrics, traces, ids on log lines) and graceful shutdown.
Why it lives in adapters/: see docs/ARCHITECTURE.md."""

from adapters.runtime.errors import Unprocessable
from adapters.runtime.http import instrument_http
from adapters.runtime.kafka import make_broker
from adapters.runtime.logging import configure_logging
from adapters.runtime.service import make_app, run
from adapters.runtime.settings import ServiceSettings

__all__ = [
    "ServiceSettings",
    "Unprocessable",
    "configure_logging",
    "instrument_http",
    "make_app",
    "make_broker",
    "run",
]
