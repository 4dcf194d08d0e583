"""Who may call Brug's HTTP edges: the client systems, configured in a file.

A client proves itself with SMART Backend Services (``adapters/smart.py``): the public keys
of its ``jwks`` verify its assertions. A static bearer token (stored as a SHA-256 hash, so
the file can be read without granting access) is accepted only where the dev setting
``BRUG_ALLOW_STATIC_TOKENS`` allows it.
A GP client acts for one practice (its AGB code); a welfare client for one organisation; a
municipality client for one municipality (its CBS code, ``GM`` and four digits), and only
reads that municipality's and the nation's monitor figures (no Kafka access at all).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from enum import StrEnum
from pathlib import Path
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class ClientKind(StrEnum):
    GP = "gp"
    WELFARE = "welfare"
    MUNICIPALITY = "municipality"


class Client(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")
    kind: ClientKind
    organisation: str = Field(
        description="AGB code for a GP client, organisation id for welfare, CBS code "
        "(GMxxxx) for a municipality."
    )
    name: str
    token_sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="A static token (dev only)."
    )
    jwks: dict[str, Any] | None = Field(
        default=None, description="Public keys that verify its SMART client assertions."
    )
    scopes: list[str] | None = Field(
        default=None, description="Narrows the scopes of its kind (adapters/smart.py)."
    )
    allow_loopback_http: bool = Field(
        default=False,
        description="Development only: its Subscription endpoints may be plain http on loopback.",
    )

    @field_validator("jwks")
    @classmethod
    def _public_keys_only(cls, jwks: dict[str, Any] | None) -> dict[str, Any] | None:
        if jwks is None:
            return None
        keys = jwks.get("keys")
        if not isinstance(keys, list) or not keys:
            raise ValueError("jwks needs a non-empty keys list")
        if any(not isinstance(key, dict) or _PRIVATE_MEMBERS & key.keys() for key in keys):
            raise ValueError("jwks may hold public keys only")
        try:
            KeySet.import_key_set(jwks)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError) as error:
            raise ValueError(f"jwks is not a usable key set: {error}") from None
        return jwks

    @model_validator(mode="after")
    def _municipality_by_cbs_code(self) -> Client:
        if self.kind is ClientKind.MUNICIPALITY and not _CBS_CODE.fullmatch(self.organisation):
            raise ValueError("a municipality client's organisation is its CBS code, GMxxxx")
        return self


_CBS_CODE = re.compile(r"GM[0-9]{4}")


class ClientRegistry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    clients: list[Client]

    def authenticate(self, token: str) -> Client | None:
        digest = hash_token(token)
        # Compare against every entry so timing does not reveal which prefix matched.
        found = None
        for client in self.clients:
            if hmac.compare_digest(client.token_sha256 or "", digest):
                found = client
        return found

    def find(self, client_id: str) -> Client | None:
        return next((c for c in self.clients if c.client_id == client_id), None)


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
