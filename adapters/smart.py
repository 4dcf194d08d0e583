"""SMART Backend Services (HL7 SMART App Launch v2): the token endpoint's logic and the
check of the access tokens it issues, for both HTTP edges.

A client system proves who it is with a ``private_key_jwt`` assertion signed by a key in
its registry entry's JWKS (``adapters/clients.py``); only public keys are registered and
nothing is fetched. The answer is an access token of at most five minutes: a JWT signed by
Brug's own key (``BRUG_TOKEN_SIGNING_KEY_FILE``), so an edge verifies it without a database
round trip. An assertion's ``jti`` is used once: it is kept in ``client_assertions``
(migration 0014) until the assertion expires. ``joserfc`` does the JOSE work.

Scopes are SMART v2 ``system/<Resource>.<cruds>`` (v1 ``.read``/``.write``/``.*`` and the
``*`` resource are understood too); a grant is what was asked intersected with what the
client's kind may, narrowed by the entry's own ``scopes`` when it lists them.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, GuestProtocol, KeySet, RSAKey
from sqlalchemy import delete, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.clients import Client, ClientKind, ClientRegistry, Unauthenticated
from adapters.ledger.tables import client_assertions
from adapters.runtime.settings import EdgeSettings

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ("RS384", "ES384", "RS256", "ES256")  # the first two as SMART requires
MAX_ASSERTION_SECONDS = 300  # an assertion's exp at most this far ahead
ACCESS_TOKEN_SECONDS = 300
CLOCK_SKEW_SECONDS = 5
TOKEN_PATH = "/fhir/auth/token"  # noqa: S105 (a path, not a secret)

# What each kind of client may ever be granted, per (pseudo-)resource.
GP_SCOPES: dict[str, str] = {
    "ServiceRequest": "cu",  # c: submit a referral; u: withdraw it (status revoked)
    "Task": "rus",
    "Communication": "rs",
    "Subscription": "cruds",
    "AuditEvent": "s",  # who accessed its own referrals
}
WELFARE_SCOPES: dict[str, str] = {
    "Referral": "rc",  # r: read a referral's details and status; c: POST a status or signal
}
MUNICIPALITY_SCOPES: dict[str, str] = {
    "MonitorReport": "r",  # its own municipality's and the national figures (monitor_api)
}
KIND_SCOPES = {
    ClientKind.GP: GP_SCOPES,
    ClientKind.WELFARE: WELFARE_SCOPES,
    ClientKind.MUNICIPALITY: MUNICIPALITY_SCOPES,
}
_ORDER = "cruds"
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_SCOPE = re.compile(r"^system/(\*|[A-Za-z]{1,64})\.([a-z*]{1,5})$")

Grant = dict[str, frozenset[str]]
"""Resource → permitted interactions (``c``, ``r``, ``u``, ``d``, ``s``)."""


class OAuthError(Exception):
    """An RFC 6749 §5.2 error answer of the token endpoint."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class InsufficientScope(Exception):
    """A valid token whose scopes do not cover the request (403)."""


# Scopes ------------------------------------------------------------------------------------


def parse_scope(scope: str) -> tuple[str, frozenset[str]] | None:
    """``system/Task.rus`` → (``Task``, {r, u, s}); None for anything else."""
    match = _SCOPE.match(scope)
    if match is None:
        return None
    resource, permissions = match.groups()
    letters = _V1.get(permissions, permissions)
    if not set(letters) <= set(_ORDER) or len(set(letters)) != len(letters):
        return None
    return resource, frozenset(letters)


def allowed(client: Client) -> Grant:
    """What the client may ever be granted: its kind's scopes, narrowed by its entry."""
    grant = {resource: frozenset(p) for resource, p in KIND_SCOPES[client.kind].items()}
    if client.scopes is not None:
        grant = _intersect(grant, _parse_all(client.scopes))
    return grant


def grant_scopes(requested: str, client: Client) -> Grant:
    """What was asked, intersected with what the client may; ``invalid_scope`` if empty."""
    wanted = _parse_all(requested.split())
    granted = _intersect(allowed(client), wanted)
    if not granted:
        raise OAuthError(400, "invalid_scope", "none of the requested scopes may be granted")
    return granted


def format_scopes(grant: Grant) -> str:
    return " ".join(
        f"system/{resource}.{''.join(p for p in _ORDER if p in permissions)}"
        for resource, permissions in sorted(grant.items())
    )


def scopes_supported() -> list[str]:
    every: Grant = {}
    for scopes in KIND_SCOPES.values():
        every |= {resource: frozenset(p) for resource, p in scopes.items()}
    return format_scopes(every).split()


def permits(grant: Grant | None, resource: str, interaction: str) -> bool:
    """None is a static dev token's grant: everything its kind's edge offers."""
    return grant is None or interaction in grant.get(resource, frozenset())


def _parse_all(scopes: list[str]) -> Grant:
    grant: dict[str, set[str]] = {}
    for scope in scopes:
        parsed = parse_scope(scope)
        if parsed is not None:
            grant.setdefault(parsed[0], set()).update(parsed[1])
    return {resource: frozenset(p) for resource, p in grant.items()}


def _intersect(may: Grant, wanted: Grant) -> Grant:
    result = {}
    for resource, permissions in may.items():
        asked = wanted.get(resource, frozenset()) | wanted.get("*", frozenset())
        if common := permissions & asked:
            result[resource] = common
    return result


# Brug's own key ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    key: ECKey | RSAKey
    algorithm: str

    @property
    def kid(self) -> str:
        return self.key.thumbprint()


def load_signing_key(path: Path) -> SigningKey:
    """A PEM private key: EC P-256 (ES256), P-384 (ES384) or RSA (RS256)."""
    pem = path.read_bytes()
    key: ECKey | RSAKey
    try:
        key = ECKey.import_key(pem)
        algorithm = {"P-256": "ES256", "P-384": "ES384"}.get(key.curve_name, "")
    except (JoseError, ValueError, TypeError):
        key, algorithm = RSAKey.import_key(pem), "RS256"
    if not algorithm or not key.is_private:
        raise RuntimeError(f"{path}: need a private EC P-256/P-384 or RSA key")
    return SigningKey(key, algorithm)


# The token endpoint ------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenService:
    """Issues access tokens for valid ``client_credentials`` requests."""

    clients: ClientRegistry
    signing_key: SigningKey
    token_endpoint: str  # the assertion's required ``aud``
    issuer: str
    engine: AsyncEngine

    async def issue(self, form: Mapping[str, str]) -> dict[str, Any]:
        if form.get("grant_type") != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type", "only client_credentials is supported")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise OAuthError(
                400, "invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}"
            )
        assertion = form.get("client_assertion") or ""
        if not assertion or not form.get("scope", "").strip():
            raise OAuthError(400, "invalid_request", "client_assertion and scope are required")
        client, claims = self._verify_assertion(assertion, form.get("client_id"))
        granted = grant_scopes(form["scope"], client)
        if not await self._first_use(client.client_id, claims["jti"], int(claims["exp"])):
            raise _invalid_client("this assertion (jti) was used before")
        now = int(time.time())
        token_claims = {
            "iss": self.issuer,
            "sub": client.client_id,
            "aud": self.issuer,
            "iat": now,
            "exp": now + ACCESS_TOKEN_SECONDS,
            "jti": str(uuid.uuid4()),
            "scope": format_scopes(granted),
        }
        header = {"alg": self.signing_key.algorithm, "kid": self.signing_key.kid, "typ": "at+jwt"}
        token = jwt.encode(
            header, token_claims, self.signing_key.key, algorithms=[self.signing_key.algorithm]
        )
        return {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": ACCESS_TOKEN_SECONDS,
            "scope": token_claims["scope"],
        }

    def _verify_assertion(
        self, assertion: str, form_client_id: str | None
    ) -> tuple[Client, dict[str, Any]]:
        claimed = asserted_client_id(assertion)
        client = self.clients.find(claimed) if claimed else None
        if client is None or client.jwks is None:
            raise _invalid_client("unknown client, or no JWKS registered for it")
        if form_client_id and form_client_id != client.client_id:
            raise _invalid_client("client_id does not match the assertion's issuer")
        keys = KeySet.import_key_set(client.jwks)  # type: ignore[arg-type]
        try:
            token = jwt.decode(assertion, _key_finder(keys), algorithms=ASSERTION_ALGORITHMS)
        except (JoseError, ValueError, TypeError):
            raise _invalid_client("the assertion's signature does not verify") from None
        claims = token.claims
        now = time.time()
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        exp = claims.get("exp")
        jti = claims.get("jti")
        if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
            raise _invalid_client("iss and sub must both be the client id")
        if self.token_endpoint not in audiences:
            raise _invalid_client(f"aud must be {self.token_endpoint}")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise _invalid_client("exp is required")
        if exp <= now - CLOCK_SKEW_SECONDS:
            raise _invalid_client("the assertion has expired")
        if exp > now + MAX_ASSERTION_SECONDS + CLOCK_SKEW_SECONDS:
            raise _invalid_client(f"exp may be at most {MAX_ASSERTION_SECONDS} s ahead")
        if not isinstance(jti, str) or not 0 < len(jti) <= 255:
            raise _invalid_client("jti is required (a string of at most 255 characters)")
        return client, claims

    async def _first_use(self, client_id: str, jti: str, exp: int) -> bool:
        """Records the jti; False when it was there already. Expired ones are pruned."""
        expires_at = datetime.fromtimestamp(exp + CLOCK_SKEW_SECONDS, UTC)
        async with self.engine.begin() as connection:
            await connection.execute(
                delete(client_assertions).where(client_assertions.c.expires_at < func.now())
            )
            inserted = await connection.execute(
                insert(client_assertions)
                .values(client_id=client_id, jti=jti, expires_at=expires_at)
                .on_conflict_do_nothing()
                .returning(client_assertions.c.jti)
            )
            return inserted.first() is not None


def asserted_client_id(assertion: str) -> str | None:
    """The ``iss`` an assertion claims, unverified: for finding its keys and rate limiting."""
    parts = assertion.split(".")
    if len(parts) != 3 or len(parts[1]) > 8192:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, TypeError):
        return None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    return issuer if isinstance(issuer, str) and len(issuer) <= 64 else None


def _key_finder(keys: KeySet) -> Any:
    def find(guest: GuestProtocol) -> Any:
        kid = guest.headers().get("kid")
        if kid is None and len(keys.keys) == 1:
            return keys.keys[0]
        return keys

    return find


def _invalid_client(description: str) -> OAuthError:
    return OAuthError(401, "invalid_client", description)


# Verifying access tokens at the edges ------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    client: Client
    grant: Grant | None  # None: a static dev token


@dataclass(frozen=True)
class EdgeAuthenticator:
    """Who a request's bearer token names, at an edge for one kind of client."""

    clients: ClientRegistry
    signing_key: SigningKey | None
    issuer: str
    allow_static_tokens: bool

    def principal(self, authorization: str | None, kind: ClientKind) -> Principal:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("a bearer token is required", "Bearer")
        principal = self._from_jwt(token) if token.count(".") == 2 else None
        if principal is None and self.allow_static_tokens:
            client = self.clients.authenticate(token)
            principal = Principal(client, None) if client is not None else None
        if principal is None or principal.client.kind is not kind:
            raise Unauthenticated(
                "the bearer token is not valid here", 'Bearer error="invalid_token"'
            )
        return principal

    def _from_jwt(self, token: str) -> Principal | None:
        if self.signing_key is None:
            return None
        algorithm = self.signing_key.algorithm
        try:
            decoded = jwt.decode(token, self.signing_key.key, algorithms=[algorithm])
            jwt.JWTClaimsRegistry(
                leeway=CLOCK_SKEW_SECONDS,
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.issuer},
                exp={"essential": True},
                sub={"essential": True},
            ).validate(decoded.claims)
        except (JoseError, ValueError, TypeError):
            return None
        client = self.clients.find(decoded.claims["sub"])
        scope = decoded.claims.get("scope")
        if client is None or not isinstance(scope, str):
            return None
        return Principal(client, _parse_all(scope.split()))


def authenticator(settings: EdgeSettings, clients: ClientRegistry) -> EdgeAuthenticator:
    key = settings.token_signing_key_file
    return EdgeAuthenticator(
        clients=clients,
        signing_key=load_signing_key(key) if key is not None else None,
        issuer=settings.token_issuer,
        allow_static_tokens=settings.allow_static_tokens,
    )


def smart_configuration(token_endpoint: str) -> dict[str, Any]:
    """``/.well-known/smart-configuration`` for Backend Services."""
    return {
        "token_endpoint": token_endpoint,
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": scopes_supported(),
        "capabilities": ["client-confidential-asymmetric"],
    }
