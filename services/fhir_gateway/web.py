"""The FHIR edge's HTTP plumbing: reading a request body within its limits, answering in
FHIR JSON or XML, and turning an unreachable database or broker into a 503."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import OperationalError

from adapters.fhir.formats import FHIR_JSON, FHIR_XML, JSON_TYPES, XML_TYPES, json_to_xml, wants_xml
from adapters.fhir.outcomes import FhirProblem
from adapters.runtime import safejson
from services.fhir_gateway.submission import SERVICE

ACCEPTED_TYPES = JSON_TYPES | XML_TYPES
JSON_PATCH = "application/json-patch+json"
RETRY_AFTER_SECONDS = "10"

log = structlog.get_logger(f"brug.{SERVICE}")


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, max_bytes: int, also: tuple[str, ...] = ()) -> bytes:
    """The body of a FHIR request: 415 for another content type, 413 beyond ``max_bytes``
    (checked while streaming too, since Content-Length may be absent or wrong)."""
    kind = media_type(request)
    if kind not in ACCEPTED_TYPES and kind not in also:
        raise FhirProblem(
            415,
            "not-supported",
            f"content type {kind or '(none)'} is not supported; send "
            "application/fhir+json, application/json or application/fhir+xml",
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise _too_large(max_bytes)
    return body


def _too_large(max_bytes: int) -> FhirProblem:
    return FhirProblem(413, "too-long", f"the request body exceeds {max_bytes} bytes")


# Why a body's JSON was refused → the OperationOutcome's issue code.
_REFUSAL_CODES = {
    "syntax": "structure",
    "too-deep": "too-costly",
    "duplicate-key": "structure",
    "number": "value",
    "character": "invalid",
}


def parse_json(body: bytes) -> Any:
    """The body's JSON, or a 400 OperationOutcome: bounded nesting, no duplicate keys, no
    NaN, no NUL, other control characters or lone surrogates (``adapters/runtime/safejson.py``)."""
    try:
        document = safejson.loads(body, strings=False)
    except safejson.JsonRefused as refused:
        code = _REFUSAL_CODES[refused.kind]
        raise FhirProblem(400, code, f"the body is not usable JSON: {refused}") from None
    kind = document.get("resourceType") if isinstance(document, dict) else None
    root = kind if isinstance(kind, str) and kind.isalnum() else "$"
    if (where := safejson.bad_string(document, root)) is not None:
        raise FhirProblem(
            400,
            "invalid",
            "a string holds NUL, another control character or a lone surrogate",
            where,
        )
    return document


def fhir_response(
    request: Request, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response:
    """JSON, or XML when the client asked for it (``_format``, ``Accept``) or sent XML."""
    if wants_xml(
        request.headers.get("content-type", ""),
        request.headers.get("accept", ""),
        request.query_params.get("_format"),
    ):
        return Response(json_to_xml(body), status, headers, media_type=FHIR_XML)
    return JSONResponse(body, status_code=status, headers=headers, media_type=FHIR_JSON)


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@asynccontextmanager
async def infrastructure_guard() -> AsyncIterator[None]:
    """Broker or database unavailable → 503 with Retry-After; nothing was accepted."""
    try:
        yield
    except (OperationalError, TimeoutError, OSError) as error:
        raise _unavailable(error) from None
    except Exception as error:
        if type(error).__module__.startswith(("aiokafka", "kafka")):
            raise _unavailable(error) from None
        raise


def _unavailable(error: BaseException) -> FhirProblem:
    log.warning("infrastructure unavailable", error_type=type(error).__name__)
    return FhirProblem(
        503,
        "transient",
        "Brug cannot make the referral durable right now; nothing was accepted, retry later",
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )
