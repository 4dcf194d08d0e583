"""What the FHIR edge's handlers share, built once by the composition root (``app.py``):
the client registry, the translation tables, and the ledger's services on one engine.

HTTP routes receive it with ``Depends(fhir_edge)``; the Kafka inbound handler by closure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.clients import (
    Client,
    ClientKind,
    ClientRegistry,
    Unauthenticated,
    authenticate_bearer,
)
from adapters.fhir.outcomes import FhirProblem
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

    def authenticate(self, request: Request, kind: ClientKind = ClientKind.GP) -> Client:
        """The client named by the bearer token, or a 401 OperationOutcome."""
        try:
            return authenticate_bearer(self.clients, request.headers.get("authorization"), kind)
        except Unauthenticated as refused:
            code = "login" if "required" in refused.detail else "security"
            raise FhirProblem(
                401, code, refused.detail, headers={"WWW-Authenticate": refused.challenge}
            ) from None

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


def fhir_edge(request: Request) -> FhirEdge:
    """The edge the composition root put on the app (a FastAPI dependency)."""
    edge: FhirEdge = request.app.state.fhir_edge
    return edge


Edge = Annotated[FhirEdge, Depends(fhir_edge)]
