"""Signed webhook POSTs to welfare organisations without Kafka, by the Standard Webhooks
specification (https://www.standardwebhooks.com/), so receivers verify with any of its
libraries (Python: ``standardwebhooks``, ``Webhook(secret).verify(body, headers)``).

Headers: ``webhook-id`` (the delivery id, the same on every retry: receivers deduplicate on
it), ``webhook-timestamp`` (unix seconds; receivers reject more than five minutes off) and
``webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>``. During a
secret rotation there is one signature per secret, space-separated, the current first.
A secret is ``whsec_`` + base64 of its key (at least 24 bytes, as the specification advises).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from opentelemetry.trace import SpanKind

from adapters.outbound import Refused, pinned_target
from adapters.runtime.tracing import span, trace_headers

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
MIN_KEY_BYTES = 24


def secret_key(secret: str) -> bytes:
    """The key in a ``whsec_<base64>`` secret; ValueError saying what is wrong (never the
    secret itself) for anything else. Base64 padding may be left off, as the libraries allow."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"is not a {SECRET_PREFIX}<base64> secret")
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"is not base64 after {SECRET_PREFIX}") from None
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"has a key of {len(key)} bytes; at least {MIN_KEY_BYTES} are needed")
    return key


def sign(secret: str, delivery_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of the body for this delivery id and timestamp."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    mac = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(mac).decode()}"


def signature_headers(
    secrets: Sequence[str], delivery_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with each secret (current first)."""
    if not secrets:
        raise ValueError("no secret to sign with")
    return {
        ID_HEADER: delivery_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: " ".join(sign(s, delivery_id, timestamp, body) for s in secrets),
    }


@dataclass(frozen=True)
class Attempt:
    ok: bool
    detail: str


async def post_signed(
    client: httpx.AsyncClient,
    url: str,
    secrets: Sequence[str],
    body: bytes,
    delivery_id: str,
    *,
    allow_loopback_http: bool = False,
) -> Attempt:
    try:  # resolved and checked at every attempt, and sent to the address checked
        target = await pinned_target(url, allow_loopback_http=allow_loopback_http)
    except Refused as refused:
        return Attempt(False, f"endpoint not allowed: {refused}")
    # No URL on the span: endpoints are the organisations' business, not our telemetry's.
    with span("POST webhook", kind=SpanKind.CLIENT) as current:
        headers = {
            "Content-Type": "application/json",
            "Host": target.host_header,
            **signature_headers(secrets, delivery_id, int(time.time()), body),
            **trace_headers(),  # the receiver may continue the referral's trace
        }
        sni = {"sni_hostname": target.sni_hostname} if target.sni_hostname else {}
        try:
            response = await client.post(target.url, content=body, headers=headers, extensions=sni)
        except httpx.HTTPError as error:
            return Attempt(False, f"{type(error).__name__}")
        current.set_attribute("http.response.status_code", response.status_code)
    if 200 <= response.status_code < 300:
        return Attempt(True, f"HTTP {response.status_code}")
    return Attempt(False, f"HTTP {response.status_code}")
