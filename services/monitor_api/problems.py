"""The monitor API's errors: RFC 9457 problem documents, for refusals and for anything
FastAPI or Starlette refuse themselves (an unknown path, a missing parameter)."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers or {}


def problem_document(problem: Problem) -> Response:
    body = {
        "type": "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
    }
    return JSONResponse(body, problem.status, problem.headers, media_type=PROBLEM_JSON)


async def problem_response(_: Request, problem: Problem) -> Response:
    return problem_document(problem)


async def http_problem(_: Request, error: HTTPException) -> Response:
    known = error.status_code in {status.value for status in HTTPStatus}
    title = HTTPStatus(error.status_code).phrase if known else "Error"
    detail = error.detail if isinstance(error.detail, str) else title
    return problem_document(Problem(error.status_code, title, detail, dict(error.headers or {})))


async def invalid_request(_: Request, invalid: RequestValidationError) -> Response:
    """A query FastAPI cannot read (a missing period): 400, not FastAPI's 422."""
    error = invalid.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return problem_document(Problem(400, "Bad Request", f"{where}: {error['msg']}"))
