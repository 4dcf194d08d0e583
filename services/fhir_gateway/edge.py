"""What the FHIR edge's handlers share, built once by the composition root (``app.py``):
the client registry, the translation tables, and the ledger's services on one engine;
and who is calling (a SMART access token, or a static dev token), within its scopes and
its rate limit.

HTTP routes receive it with ``Depends(fhir_edge)``; the Kafka inbound handler by closure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.clients import Client, ClientKind, ClientRegistry, Unauthenticated
from adapters.fhir.outcomes import FhirProblem
from adapters.ratelimit import RateLimiter
from adapters.smart import EdgeAuthenticator, Principal, TokenService, permits
from contracts.directory import WelfareDirectory
from contracts.mappings import ThemeTable
from contracts.postcodes import PostcodeTable
from services.fhir_gateway.reads import Reads
from services.fhir_gateway.settings import GatewaySettings
from services.fhir_gateway.submission import Reply, Submissions
from services.fhir_gateway.web import read_body
from services.fhir_gateway.withdrawal import Withdrawals


@dataclass(frozen=True)
class FhirEdge:
    settings: GatewaySettings
    clients: ClientRegistry
    directory: WelfareDirectory
    postcodes: PostcodeTable
    themes: ThemeTable
    engine: AsyncEngine
    submissions: Submissions
    reads: Reads
    withdrawals: Withdrawals
    authenticator: EdgeAuthenticator
    limiter: RateLimiter
    tokens: TokenService | None  # None: no signing key, no token endpoint
    token_limiter: RateLimiter

    def authenticate(self, request: Request, kind: ClientKind = ClientKind.GP) -> Client:
        """The client named by the bearer token: else 401; 403 when its scopes do not
        cover the request; 429 over its rate limit. Checked once per request (the body
        limit's admission and the route share the answer)."""
        cached: Principal | None = request.scope.get(_PRINCIPAL)
        if cached is not None:
            return cached.client
        try:
            principal = self.authenticator.principal(request.headers.get("authorization"), kind)
        except Unauthenticated as refused:
            code = "login" if "required" in refused.detail else "security"
            raise FhirProblem(
                401, code, refused.detail, headers={"WWW-Authenticate": refused.challenge}
            ) from None
        if (retry_after := self.limiter.hit(principal.client.client_id)) is not None:
            raise FhirProblem(
                429,
                "throttled",
                f"too many requests from this client; retry after {retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )
        resource, interaction = required_scope(request.method, request.url.path)
        if not permits(principal.grant, resource, interaction):
            raise FhirProblem(
                403,
                "forbidden",
                f"the access token's scopes do not include system/{resource}.{interaction}",
                headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'},
            )
        request.scope[_PRINCIPAL] = principal
        return principal.client

    def gp_client(self, client_id: str | None) -> Client | None:
        """The registered GP system ``client_id``, if there is one."""
        client = next((c for c in self.clients.clients if c.client_id == client_id), None)
        return client if client is not None and client.kind is ClientKind.GP else None

    async def body(self, request: Request, also: tuple[str, ...] = ()) -> bytes:
        return await read_body(request, self.settings.max_body_bytes, also)

    def location_header(self, reply: Reply) -> dict[str, str]:
        if not reply.location:
            return {}
        return {"Location": f"{self.settings.fhir_base_url}/{reply.location}"}


_PRINCIPAL = "brug.principal"
_INTERACTIONS = {"POST": "c", "PUT": "u", "PATCH": "u", "DELETE": "d"}


def required_scope(method: str, path: str) -> tuple[str, str]:
    """The SMART (resource, interaction) a request needs: ``POST /fhir`` submits a
    ServiceRequest; a GET reads (``r``) with an id and searches (``s``) without."""
    segments = [segment for segment in path.split("/")[2:] if segment]
    if not segments:
        return "ServiceRequest", "c"
    if method in {"GET", "HEAD"}:
        return segments[0], "r" if len(segments) > 1 else "s"
    return segments[0], _INTERACTIONS.get(method, "u")


def fhir_edge(request: Request) -> FhirEdge:
    """The edge the composition root put on the app (a FastAPI dependency)."""
    edge: FhirEdge = request.app.state.fhir_edge
    return edge


Edge = Annotated[FhirEdge, Depends(fhir_edge)]
