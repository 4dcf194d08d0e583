"""Signals of the HTTP edges: a server span per request (continuing the caller's W3C
``traceparent`` if it sent one), request counts and latency by route *template*, and the
referral id of the path on every log line and on the span of the request.

FastAPI (0.165+) starts the server span itself once a TracerProvider is set (its native
telemetry, around the whole middleware stack); this middleware then only labels that span.
Should that be switched off, it starts the span itself. A plain ASGI middleware, not
``BaseHTTPMiddleware``: it runs in the request's own task, so the span is the current one
in the endpoint, and what the endpoint publishes to Kafka continues the same trace.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Any

from fastapi import Depends, FastAPI, Request
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
