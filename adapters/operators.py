"""Who may log in to the operator console, configured in a file like the API clients.

Passwords are stored as scrypt hashes (``brug operators hash-password``), so the file can be
read without granting access. Two roles: an ``operator`` sees metadata and acts on what is
stuck; a ``privacy-officer`` may also reveal a referral's details, with a reason, audited.
The console reads the file again when it changes (``WatchedOperators``): a removed operator
or a changed role ends that operator's sessions at their next request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from adapters.watched_file import WatchedFile

# RFC 7914's interactive-login parameters: ~50 ms and 16 MiB per check.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


class OperatorRole(StrEnum):
    OPERATOR = "operator"
    PRIVACY_OFFICER = "privacy-officer"


class Operator(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$")
    name: str
    role: OperatorRole
    password_scrypt: str = Field(description="scrypt$<salt b64>$<hash b64>")

    @property
    def may_reveal(self) -> bool:
        return self.role is OperatorRole.PRIVACY_OFFICER


class OperatorRegistry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    operators: list[Operator]

    def find(self, username: str) -> Operator | None:
        return next((o for o in self.operators if o.username == username), None)

    def authenticate(self, username: str, password: str) -> Operator | None:
        operator = self.find(username)
        # Hash even for an unknown name, so timing does not reveal which names exist.
        stored = operator.password_scrypt if operator else hash_password("", salt=b"0" * 16)
        return operator if verify_password(password, stored) and operator else None


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    encode = base64.b64encode
    return f"scrypt${encode(salt).decode()}${encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt, _ = stored.split("$")
        expected = hash_password(password, salt=base64.b64decode(salt))
    except ValueError:
        return False
    return scheme == "scrypt" and hmac.compare_digest(expected, stored)


def load_operators(path: Path) -> OperatorRegistry:
    try:
        return OperatorRegistry.model_validate_json(path.read_bytes())
    except FileNotFoundError as error:
        raise RuntimeError(f"operator registry not found: {path}") from error


class WatchedOperators(WatchedFile[OperatorRegistry]):
    """The operators file, read again whenever it changes, so removing an operator or
    changing a role takes effect without a restart."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            path,
            load_operators,
            what="operators",
            refused=(RuntimeError, OSError, ValueError),  # ValueError: not valid
            logger="brug.operators",
            summary=lambda registry: {"operators": len(registry.operators)},
        )
