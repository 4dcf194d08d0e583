"""Building and running a service: one FastStream app, logging set up, clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI


def brug_version() -> str:
    try:
        return version("brug")
    except PackageNotFoundError:
        return "0.0.0+unknown"


READY_LOG_LINE = "brug service ready"


def make_asyncapi(broker: KafkaBroker, *, service: str, description: str) -> AsyncAPI:
    """The AsyncAPI document of a service's Kafka side (``brug contracts generate``)."""
    return AsyncAPI(
        broker, title=f"Brug {service}", version=brug_version(), description=description
    )


def make_app(broker: KafkaBroker, *, service: str, description: str) -> FastStream:
    """The FastStream app for ``broker``, with the AsyncAPI document's metadata."""
    app = FastStream(
        broker,
        logger=logging.getLogger(f"brug.{service}"),
        specification=make_asyncapi(broker, service=service, description=description),
    )

    @app.after_startup
    async def _announce_ready() -> None:
        # The dev stack and the tests wait for this line: the consumers are subscribed.
        logging.getLogger(f"brug.{service}").info(READY_LOG_LINE)

    return app


def run_in_background(app: FastStream, *loops: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run each ``loop`` as a task from start-up until shutdown (the service's timer,
    delivery and relay loops): started after the broker is connected, cancelled before it
    closes, so a loop never runs without its broker."""
    tasks: list[asyncio.Task[None]] = []

    @app.after_startup
    async def _start_loops() -> None:
        tasks.extend(asyncio.create_task(loop()) for loop in loops)

    @app.on_shutdown
    async def _stop_loops() -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def run(app: FastStream) -> None:
    """Run until SIGINT/SIGTERM; FastStream then stops consuming, lets in-flight handlers
    finish (up to the broker's graceful timeout) and commits before the process exits."""
    asyncio.run(app.run())
