"""The social edge's errors: RFC 9457 problem documents (the social side speaks plain JSON,
not FHIR), for refusals and for bodies that fail validation."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers or {}


def not_found(what: object) -> Problem:
    return Problem(404, "Not Found", f"no referral {what}")


async def problem_response(_: Request, problem: Problem) -> Response:
    return problem_document(problem)


def problem_document(problem: Problem) -> Response:
    body = {
        "type": "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
    }
    return JSONResponse(body, problem.status, problem.headers, media_type=PROBLEM_JSON)


async def http_problem(_: Request, error: HTTPException) -> Response:
    """Starlette's and FastAPI's own refusals (a body that does not parse, an unknown path,
    a method not allowed) as problem documents too."""
    title = HTTPStatus(error.status_code).phrase if error.status_code in _KNOWN else "Error"
    detail = error.detail if isinstance(error.detail, str) else title
    return problem_document(Problem(error.status_code, title, detail, dict(error.headers or {})))


_KNOWN = {status.value for status in HTTPStatus}


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
