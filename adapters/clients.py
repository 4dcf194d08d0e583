"""Who may call Brug's HTTP edges: one bearer token per client system, configured in a file.

Tokens are stored as SHA-256 hashes, so the file can be read without granting access.
A GP client acts for one practice (its AGB code); a welfare client for one organisation.
"""

from __future__ import annotations

import hashlib
import hmac
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class ClientKind(StrEnum):
    GP = "gp"
    WELFARE = "welfare"


class Client(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")
    kind: ClientKind
    organisation: str = Field(description="AGB code for a GP client, organisation id for welfare.")
    name: str
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    allow_loopback_http: bool = Field(
        default=False,
        description="Development only: its Subscription endpoints may be plain http on loopback.",
    )


class ClientRegistry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    clients: list[Client]

    def authenticate(self, token: str) -> Client | None:
        digest = hash_token(token)
        # Compare against every entry so timing does not reveal which prefix matched.
        found = None
        for client in self.clients:
            if hmac.compare_digest(client.token_sha256, digest):
                found = client
        return found


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def load_clients(path: Path) -> ClientRegistry:
    try:
        return ClientRegistry.model_validate_json(path.read_bytes())
    except FileNotFoundError as error:
        raise RuntimeError(f"client registry not found: {path}") from error


class Unauthenticated(Exception):
    def __init__(self, detail: str, challenge: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.challenge = challenge


def authenticate_bearer(
    registry: ClientRegistry, authorization: str | None, kind: ClientKind
) -> Client:
    """The client behind an ``Authorization: Bearer …`` header, or ``Unauthenticated``."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("a bearer token is required", "Bearer")
    client = registry.authenticate(token.strip())
    if client is None or client.kind is not kind:
        raise Unauthenticated("the bearer token is not valid here", 'Bearer error="invalid_token"')
    return client
