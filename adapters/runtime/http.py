"""Signals of the HTTP edges: a server span per request (continuing the caller's W3C
``traceparent`` if it sent one), request counts and latency by route *template*, and the
referral id of the path on every log line and on the span of the request; and the limit
on request bodies (``limit_bodies``), enforced while they arrive, before anything parses
them, with authentication first where the edge asks for it.

FastAPI (0.165+) starts the server span itself once a TracerProvider is set (its native
telemetry, around the whole middleware stack); this middleware then only labels that span.
Should that be switched off, it starts the span itself. A plain ASGI middleware, not
``BaseHTTPMiddleware``: it runs in the request's own task, so the span is the current one
in the endpoint, and what the endpoint publishes to Kafka continues the same trace.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.runtime import metrics, tracing
from adapters.runtime.logging import bind_ids

UNMATCHED_ROUTE = "unmatched"  # a 404 for a path no route knows: one label, not one per path
# Label values come from fixed sets only, whatever a client sends.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def instrument_http(app: FastAPI, service: str) -> None:
    """Call right after creating the app, before its routes: the path-id binding is a
    router-wide dependency, which FastAPI attaches to routes as they are added."""
    app.add_middleware(HttpSignals, service=service)
    app.router.dependencies.append(Depends(_bind_path_ids))


async def _bind_path_ids(request: Request) -> None:
    # async, so it runs in the request's task and the binding reaches the endpoint's logs.
    bind_ids(referral_id=request.path_params.get("referral_id"))


def route_template(scope: Scope) -> str:
    """``/social/v1/referrals/{referral_id}``, never the path with the id in it."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(template) if template else UNMATCHED_ROUTE


class HttpSignals:
    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = str(scope["method"]) if scope["method"] in METHODS else "other"
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        status = 500  # unless a response starts: an exception escaped
        started = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        framework_span = trace.get_current_span()
        own = not framework_span.get_span_context().is_valid
        with (
            tracing.tracer().start_as_current_span(
                f"{method} http",
                context=propagate.extract(headers),
                kind=SpanKind.SERVER,
                attributes={"http.request.method": method},
            )
            if own
            else nullcontext(framework_span)
        ) as span:
            try:
                await self.app(scope, receive, send_with_status)
            finally:
                route = route_template(scope)
                if referral_id := scope.get("path_params", {}).get("referral_id"):
                    span.set_attribute("brug.referral_id", str(referral_id))
                if own:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                self._count(method, route, status, time.perf_counter() - started)

    def _count(self, method: str, route: str, status: int, seconds: float) -> None:
        labels: dict[str, Any] = {"service": self.service, "method": method, "route": route}
        metrics.HTTP_REQUESTS.labels(**labels, status=str(status)).inc()
        metrics.HTTP_DURATION.labels(**labels).observe(seconds)


# The body-size limit ---------------------------------------------------------------------

Refuse = Callable[[Request, int, str], Response]
Admit = Callable[[Request], Awaitable[Response | None]]
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def limit_bodies(app: FastAPI, max_bytes: int, refuse: Refuse, admit: Admit | None = None) -> None:
    """Call before ``instrument_http``, so its signals count the refusals too."""
    app.add_middleware(BodyLimit, max_bytes=max_bytes, refuse=refuse, admit=admit)


class _BodyTooLarge(Exception):
    """Raised into the app from ``receive`` once the refusal has been sent."""


class BodyLimit:
    """Every request body within ``max_bytes``, enforced before anything parses it.

    - ``admit`` (when given) runs first, on the headers alone, for requests that may carry
      a body: its response (a 401, say) goes out and not one byte of the body is read.
    - A Content-Length above the limit is refused up front.
    - Otherwise the bytes are counted as they arrive; the chunk that crosses the limit is
      not handed on. The 413 (``refuse``'s response, in the edge's own error format) goes
      out at once, the app gets an exception from ``receive``, and whatever it answers
      after that is dropped.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, refuse: Refuse, admit: Admit | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.refuse = refuse
        self.admit = admit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refused = None
        if self.admit is not None and scope["method"] in BODY_METHODS:
            refused = await self.admit(request)
        if refused is not None:
            await refused(scope, receive, send)
            return
        declared = request.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(request)(scope, receive, send)
            return
        received = 0
        started = refused_now = False

        async def counting_receive() -> Message:
            nonlocal received, refused_now
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    if not started:
                        refused_now = True
                        await self._too_large(request)(scope, receive, send)
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused_now:
                return  # the 413 went out already
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not refused_now:
                raise

    def _too_large(self, request: Request) -> Response:
        return self.refuse(request, 413, f"the request body exceeds {self.max_bytes} bytes")
