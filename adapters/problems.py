"""RFC 9457 problem documents for Brug's plain-JSON edges (the social gateway, the monitor
API), and the admission each of them does before a route runs: a bearer token of the
right client kind (401), within its rate limit (429), with the scope the route needs (403).
The FHIR edge answers with OperationOutcomes instead (``adapters/fhir/outcomes.py``)."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from adapters.clients import ClientKind, Unauthenticated
from adapters.ratelimit import RateLimiter
from adapters.smart import EdgeAuthenticator, Principal, permits

PROBLEM_JSON = "application/problem+json"
_KNOWN = {status.value for status in HTTPStatus}


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
    """Starlette's and FastAPI's own refusals (a body that does not parse, an unknown path,
    a method not allowed) as problem documents too."""
    title = HTTPStatus(error.status_code).phrase if error.status_code in _KNOWN else "Error"
    detail = error.detail if isinstance(error.detail, str) else title
    return problem_document(Problem(error.status_code, title, detail, dict(error.headers or {})))


def admit(
    authenticator: EdgeAuthenticator,
    limiter: RateLimiter,
    authorization: str | None,
    kind: ClientKind,
    resource: str,
    interaction: str,
) -> Principal:
    """The client the bearer token names, if it is of ``kind``, within its rate limit, and
    granted ``system/<resource>.<interaction>``; else the problem that says which not."""
    try:
        principal = authenticator.principal(authorization, kind)
    except Unauthenticated as refused:
        raise Problem(
            401, "Unauthorized", refused.detail, {"WWW-Authenticate": refused.challenge}
        ) from None
    if (retry_after := limiter.hit(principal.client.client_id)) is not None:
        raise Problem(
            429,
            "Too Many Requests",
            f"too many requests from this client; retry after {retry_after} s",
            {"Retry-After": str(retry_after)},
        )
    if not permits(principal.grant, resource, interaction):
        raise Problem(
            403,
            "Forbidden",
            f"the access token's scopes do not include system/{resource}.{interaction}",
            {"WWW-Authenticate": 'Bearer error="insufficient_scope"'},
        )
    return principal
