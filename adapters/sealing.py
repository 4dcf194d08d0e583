"""Sealing at rest: AES-256-GCM under keys from ``BRUG_DEAD_LETTER_KEYS``.

A dead letter's original record (a GP's Bundle, with BSN, diagnosis and medication) is kept
for replay and the privacy officer's audited reveal, so it cannot be reduced to metadata; it
is kept sealed instead. The sealed form is text::

    sealed:v1:<key id>:<base64(nonce || ciphertext || tag)>

with a random 96-bit nonce per seal and associated data that binds it to its row (the dead
letter's id): a sealed value copied onto another row does not open.

Rotation: ``BRUG_DEAD_LETTER_KEYS`` is ``kid:<base64 of 32 bytes>`` pairs separated by commas,
newest first. The first seals; every one opens the values sealed under its key id. To rotate,
put a new key in front and keep the old ones until everything sealed under them has aged
out (the dead letters' retention, BRUG_DEAD_LETTER_RETENTION_DAYS), then drop them.

A value without the ``sealed:`` prefix is one stored before sealing (or an emptied one):
it opens as itself.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "sealed:"
VERSION = "v1"
NONCE_BYTES = 12
KEY_BYTES = 32
SETTING = "BRUG_DEAD_LETTER_KEYS"

# For the dev stack and the tests only (its key is public): production sets
# BRUG_DEAD_LETTER_KEYS to its own, e.g. `kid1:$(openssl rand -base64 32)`.
DEV_DEAD_LETTER_KEYS = "dev1:YnJ1Zy1kZXYtZGVhZC1sZXR0ZXIta2V5LTMyYnl0ZXM="


class SealError(RuntimeError):
    """A value could not be sealed or opened; the message says why (never the value)."""


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


@dataclass(frozen=True)
class Sealer:
    """The configured keys, newest first: ``(key id, 32-byte key)``."""

    keys: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def parse(cls, setting: str | None) -> Sealer:
        """``kid1:<base64>,kid0:<base64>``; empty or None: no keys (nothing seals)."""
        keys: list[tuple[str, bytes]] = []
        for item in (setting or "").split(","):
            item = item.strip()
            if not item:
                continue
            kid, sep, encoded = item.partition(":")
            kid = kid.strip()
            if not sep or not kid or not kid.replace("-", "").replace("_", "").isalnum():
                raise SealError(f"{SETTING}: each key is kid:<base64 of {KEY_BYTES} bytes>")
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except binascii.Error:
                raise SealError(f"{SETTING}: key {kid!r} is not base64") from None
            if len(key) != KEY_BYTES:
                raise SealError(f"{SETTING}: key {kid!r} has {len(key)} bytes, not {KEY_BYTES}")
            if any(kid == known for known, _ in keys):
                raise SealError(f"{SETTING}: key id {kid!r} appears twice")
            keys.append((kid, key))
        return cls(tuple(keys))

    @property
    def configured(self) -> bool:
        return bool(self.keys)

    def require(self) -> None:
        """Refuse to run without a key (where dead letters are stored)."""
        if not self.keys:
            raise SealError(
                f"{SETTING} is not set: dead letters keep their original record sealed "
                "(AES-GCM), so a key is required, e.g. kid1:$(openssl rand -base64 32) "
                "(README, settings)"
            )

    def seal(self, plaintext: str, *, bound_to: str) -> str:
        """Sealed under the newest key, bound to ``bound_to`` (e.g. the dead letter's id)."""
        self.require()
        kid, key = self.keys[0]
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(key).encrypt(nonce, plaintext.encode("utf-8"), _aad(kid, bound_to))
        return f"{PREFIX}{VERSION}:{kid}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    def open(self, value: str, *, bound_to: str) -> str:
        """The plaintext of a sealed value; a legacy (unsealed) value as it is."""
        if not is_sealed(value):
            return value
        version, _, rest = value.removeprefix(PREFIX).partition(":")
        kid, _, encoded = rest.partition(":")
        if version != VERSION or not kid or not encoded:
            raise SealError(f"not a sealed value this version reads ({version or '?'})")
        key = dict(self.keys).get(kid)
        if key is None:
            raise SealError(f"sealed under key {kid!r}, which {SETTING} does not hold")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise SealError("the sealed value is damaged (not base64)") from None
        try:
            plain = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(kid, bound_to))
        except (InvalidTag, ValueError):
            raise SealError(
                f"the sealed value does not open under key {kid!r} (altered, or not this row's)"
            ) from None
        return plain.decode("utf-8")


def _aad(kid: str, bound_to: str) -> bytes:
    return f"brug:{VERSION}:{kid}:{bound_to}".encode()
