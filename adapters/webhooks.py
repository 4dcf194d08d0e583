"""Signed webhook POSTs to welfare organisations without Kafka.

Signature (verify before trusting a delivery): ``Brug-Timestamp: <unix seconds>`` and
``Brug-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>``. Receivers
reject timestamps more than five minutes old, which stops replays of captured requests.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

import httpx
from opentelemetry.trace import SpanKind

from adapters.runtime.tracing import span, trace_headers

SIGNATURE_HEADER = "Brug-Signature"
TIMESTAMP_HEADER = "Brug-Timestamp"
TOLERANCE_SECONDS = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def verify(
    secret: str, timestamp: str, body: bytes, signature: str, now: float | None = None
) -> bool:
    if not timestamp.isdigit() or abs((now or time.time()) - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


@dataclass(frozen=True)
class Attempt:
    ok: bool
    detail: str


async def post_signed(
    client: httpx.AsyncClient, url: str, secret: str, body: bytes, delivery_id: str
) -> Attempt:
    timestamp = int(time.time())
    # No URL on the span: endpoints are the organisations' business, not our telemetry's.
    with span("POST webhook", kind=SpanKind.CLIENT) as current:
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(secret, timestamp, body),
            "Brug-Delivery-Id": delivery_id,  # the receiver deduplicates on it
            **trace_headers(),  # the receiver may continue the referral's trace
        }
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as error:
            return Attempt(False, f"{type(error).__name__}")
        current.set_attribute("http.response.status_code", response.status_code)
    if 200 <= response.status_code < 300:
        return Attempt(True, f"HTTP {response.status_code}")
    return Attempt(False, f"HTTP {response.status_code}")
