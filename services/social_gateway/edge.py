"""What the social edge's routes share, built once by the composition root (``app.py``):
the client registry and the ledger's engine; and the two checks every route starts with,
who is calling (a SMART access token of a welfare client with a ``system/Referral`` scope,
or a static dev token; within its rate limit) and whether the referral is theirs (the
aggregate decides that)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.clients import Client, ClientKind, ClientRegistry
from adapters.ledger.repository import ReferralRow
from adapters.problems import admit
from adapters.ratelimit import RateLimiter
from adapters.smart import EdgeAuthenticator, Principal
from domain.referral import Referral
from services.social_gateway.problems import Problem, not_found
from services.social_gateway.settings import SocialGatewaySettings


@dataclass(frozen=True)
class SocialEdge:
    settings: SocialGatewaySettings
    clients: ClientRegistry
    engine: AsyncEngine
    authenticator: EdgeAuthenticator
    limiter: RateLimiter

    def authenticate(self, request: Request) -> Client:
        """The case system named by the bearer token: else a 401 problem; 403 when its
        scopes do not cover the request; 429 over its rate limit. Checked once per request
        (the body limit's admission and the route share the answer)."""
        cached: Principal | None = request.scope.get(_PRINCIPAL)
        if cached is not None:
            return cached.client
        interaction = "r" if request.method in {"GET", "HEAD"} else "c"
        principal = admit(
            self.authenticator,
            self.limiter,
            request.headers.get("authorization"),
            ClientKind.WELFARE,
            "Referral",
            interaction,
        )
        request.scope[_PRINCIPAL] = principal
        return principal.client


_PRINCIPAL = "brug.principal"


def social_edge(request: Request) -> SocialEdge:
    """The edge the composition root put on the app (a FastAPI dependency)."""
    edge: SocialEdge = request.app.state.social_edge
    return edge


Edge = Annotated[SocialEdge, Depends(social_edge)]


def parse_referral_id(value: str) -> uuid.UUID:
    """A path's referral id; one that is no UUID names no referral."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise not_found(value) from None


def assigned(row: ReferralRow | None, wanted: uuid.UUID, client: Client) -> Referral:
    """The referral, if it is the caller's: else 404 or 403 (as RFC 9457 problems)."""
    if row is None:
        raise not_found(wanted)
    referral = Referral.of(row)
    if not referral.assigned_to(client.organisation):
        raise Problem(403, "Forbidden", "this referral is not assigned to your organisation")
    return referral
