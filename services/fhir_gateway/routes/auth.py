"""SMART Backend Services at the FHIR edge: the discovery document and the token endpoint
(``adapters/smart.py`` verifies the client's assertion and signs the access token). The
token endpoint answers OAuth 2.0 errors (RFC 6749 §5.2), not OperationOutcomes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from adapters import smart
from services.fhir_gateway.edge import Edge
from services.fhir_gateway.web import infrastructure_guard, media_type

router = APIRouter()

FORM = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@router.get("/fhir/.well-known/smart-configuration")
async def smart_configuration(edge: Edge) -> Response:
    return JSONResponse(smart.smart_configuration(_token_endpoint(edge)))


@router.post(smart.TOKEN_PATH)
async def token(request: Request, edge: Edge) -> Response:
    if edge.tokens is None:
        return _error(smart.OAuthError(400, "invalid_request", "this edge issues no tokens"))
    if media_type(request) != FORM:
        return _error(smart.OAuthError(400, "invalid_request", f"send {FORM}"))
    form = await request.form(max_files=0, max_fields=16)
    fields = {name: value for name, value in form.items() if isinstance(value, str)}
    claimed = smart.asserted_client_id(fields.get("client_assertion", ""))
    known = claimed is not None and edge.clients.find(claimed) is not None
    key = (
        f"client:{claimed}"
        if known
        else f"address:{request.client.host if request.client else '-'}"
    )
    if (retry_after := edge.token_limiter.hit(key)) is not None:
        refusal = smart.OAuthError(
            429, "temporarily_unavailable", f"too many token requests; retry after {retry_after} s"
        )
        return _error(refusal, {"Retry-After": str(retry_after)})
    try:
        async with infrastructure_guard():
            answer = await edge.tokens.issue(fields)
    except smart.OAuthError as refused:
        return _error(refused)
    return JSONResponse(answer, headers=NO_STORE)


def _token_endpoint(edge: Edge) -> str:
    return f"{edge.settings.fhir_base_url}/auth/token"


def _error(refused: smart.OAuthError, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(refused.body(), refused.status, {**NO_STORE, **(headers or {})})
