"""The monitor API's errors: RFC 9457 problem documents, for refusals and for anything
FastAPI or Starlette refuse themselves (an unknown path, a missing parameter)."""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

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
    "http_problem",
    "invalid_request",
    "problem_document",
    "problem_response",
]


async def invalid_request(_: Request, invalid: RequestValidationError) -> Response:
    """A query FastAPI cannot read (a missing period): 400, not FastAPI's 422."""
    error = invalid.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return problem_document(Problem(400, "Bad Request", f"{where}: {error['msg']}"))
