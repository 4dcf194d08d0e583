"""Building and running a service: one FastStream app, logging set up, clean shutdown."""

from __future__ import annotations

import asyncio
import logging
from importlib.metadata import PackageNotFoundError, version

from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI


def brug_version() -> str:
    try:
        return version("brug")
    except PackageNotFoundError:
        return "0.0.0+unknown"


def make_app(broker: KafkaBroker, *, service: str, description: str) -> FastStream:
    """The FastStream app for ``broker``, with the AsyncAPI document's metadata."""
    return FastStream(
        broker,
        logger=logging.getLogger(f"brug.{service}"),
        specification=AsyncAPI(
            broker,
            title=f"Brug {service}",
            version=brug_version(),
            description=description,
        ),
    )


def run(app: FastStream) -> None:
    """Run until SIGINT/SIGTERM; FastStream then stops consuming, lets in-flight handlers
    finish (up to the broker's graceful timeout) and commits before the process exits."""
    asyncio.run(app.run())
