"""The social edge's errors: RFC 9457 problem documents (the social side speaks plain JSON,
not FHIR), for refusals and for bodies that fail validation."""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError

from adapters.problems import (
    PROBLEM_JSON,
    Problem,
    http_problem,
    problem_document,
    problem_response,
)

__all__ = [
    "PROBLEM_JSON",
    "Problem",
    "first_error",
    "http_problem",
    "invalid_body",
    "not_found",
    "problem_document",
    "problem_response",
]


def not_found(what: object) -> Problem:
    return Problem(404, "Not Found", f"no referral {what}")


async def invalid_body(request: Request, invalid: RequestValidationError) -> Response:
    """FastAPI's 422 for a body that does not fit the model, as a problem document."""
    error = invalid.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return await problem_response(
        request, Problem(422, "Unprocessable Content", f"{where}: {error['msg']}")
    )


def first_error(invalid: ValidationError) -> str:
    error = invalid.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])
