"""The social edge's errors: RFC 9457 problem documents (the social side speaks plain JSON,
not FHIR), for refusals and for bodies that fail validation."""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers or {}


def not_found(what: object) -> Problem:
    return Problem(404, "Not Found", f"no referral {what}")


async def problem_response(_: Request, problem: Problem) -> Response:
    body = {
        "type": "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
    }
    return JSONResponse(body, problem.status, problem.headers, media_type=PROBLEM_JSON)


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
