"""Signed federation packages of the monitor's dataset (``domain/monitor/federation.py``).

A package is a folder:

- ``referrals.csv`` and ``datapackage.json``, as ``brug monitor export`` writes them
  (the Frictionless Data Package names the dataset ``version``, the ``installation`` and
  the ``period``);
- ``manifest.json``: the installation, period, dataset version and the SHA-256 of each
  file above, canonical JSON;
- ``manifest.sig``: the Ed25519 signature of ``manifest.json``'s bytes, base64, under the
  installation's signing key (``BRUG_MONITOR_SIGNING_KEY``, the raw 32-byte private key
  in base64). Whoever merges holds the installations' public keys (``--trust``).

Reading verifies the signature under the key trusted for the manifest's installation,
then every digest, then parses the rows against the contract; anything else is refused
with a one-line ``PackageRefused``.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import ValidationError

from adapters.monitor.export import csv_text
from contracts.monitor import DATASET_VERSION, FIELDS, LIST_FIELDS, MonitorRecord
from contracts.monitor.rendering import CSV_FILE, DATAPACKAGE_FILE, LIST_SEPARATOR, datapackage
from domain.monitor.federation import (
    INSTALLATION_PATTERN,
    MANIFEST_FILE,
    SIGNATURE_FILE,
    Manifest,
    Package,
    PackageRefused,
)


class KeyRefused(ValueError):
    """A signing or public key that is not an Ed25519 key in base64."""


def _raw(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyRefused(f"{what} is not base64") from None
    if len(raw) != 32:
        raise KeyRefused(f"{what} is not 32 bytes (a raw Ed25519 key)")
    return raw


def signing_key(text: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_raw(text, "the signing key"))


def public_key(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(_raw(text, "the public key"))


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return base64.b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def new_signing_key() -> tuple[str, str]:
    """A fresh key pair: (private, public), each raw and base64."""
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(private).decode(), public_key_text(key)


def trust_entries(entries: Sequence[str]) -> dict[str, Ed25519PublicKey]:
    """``installation=<base64 public key>`` each (a trust file: one a line, ``#``
    comments) → the trusted key per installation."""
    trusted: dict[str, Ed25519PublicKey] = {}
    for entry in entries:
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        installation, separator, key = entry.partition("=")
        installation = installation.strip()
        if not separator or not INSTALLATION_PATTERN.match(installation):
            raise KeyRefused(f"not installation=<base64 public key>: {entry[:40]!r}")
        if installation in trusted:
            raise KeyRefused(f"{installation} is trusted twice")
        trusted[installation] = public_key(key)
    return trusted


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_signed_package(
    records: Sequence[MonitorRecord],
    directory: Path,
    *,
    installation: str,
    period: str | None,
    key: Ed25519PrivateKey,
) -> list[Path]:
    """Write the signed package into ``directory``; returns the files written."""
    if not INSTALLATION_PATTERN.match(installation):
        raise ValueError(f"not an installation id (a-z, 0-9, -): {installation!r}")
    package = datapackage() | {"installation": installation, "period": period}
    contents = {
        CSV_FILE: csv_text(records).encode("utf-8"),
        DATAPACKAGE_FILE: (json.dumps(package, indent=2) + "\n").encode("utf-8"),
    }
    manifest = Manifest(
        installation=installation,
        period=period,
        dataset_version=DATASET_VERSION,
        files={name: _digest(data) for name, data in contents.items()},
    ).to_bytes()
    contents[MANIFEST_FILE] = manifest
    contents[SIGNATURE_FILE] = base64.b64encode(key.sign(manifest)) + b"\n"
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in contents.items():
        (directory / name).write_bytes(data)
        written.append(directory / name)
    return written


def _read(directory: Path, name: str) -> bytes:
    try:
        return (directory / name).read_bytes()
    except OSError:
        raise PackageRefused(f"{directory}: no {name}") from None


def read_package(directory: Path, trusted: Mapping[str, Ed25519PublicKey]) -> Package:
    """The verified package in ``directory``, or ``PackageRefused``."""
    manifest_bytes = _read(directory, MANIFEST_FILE)
    signature_text = _read(directory, SIGNATURE_FILE)
    try:
        manifest = Manifest.parse(manifest_bytes)
    except PackageRefused as refused:
        raise PackageRefused(f"{directory}: {refused}") from None
    where = f"{directory} ({manifest.installation})"
    key = trusted.get(manifest.installation)
    if key is None:
        raise PackageRefused(f"{where}: installation not trusted (no --trust for it)")
    try:
        key.verify(base64.b64decode(signature_text.strip(), validate=True), manifest_bytes)
    except (InvalidSignature, binascii.Error, ValueError):
        raise PackageRefused(
            f"{where}: the signature does not verify under its trusted key"
        ) from None
    for name in (CSV_FILE, DATAPACKAGE_FILE):
        if name not in manifest.files:
            raise PackageRefused(f"{where}: the manifest does not list {name}")
    contents = {}
    for name, digest in manifest.files.items():
        data = _read(directory, name)
        if _digest(data) != digest:
            raise PackageRefused(f"{where}: {name} was altered after signing (digest differs)")
        contents[name] = data
    _check_datapackage(contents[DATAPACKAGE_FILE], manifest, where)
    return Package(manifest, tuple(records_from_csv(contents[CSV_FILE], where)))


def _check_datapackage(data: bytes, manifest: Manifest, where: str) -> None:
    try:
        package = json.loads(data)
    except ValueError:
        raise PackageRefused(f"{where}: {DATAPACKAGE_FILE} is not JSON") from None
    said = (package.get("installation"), package.get("period"), package.get("version"))
    if said != (manifest.installation, manifest.period, manifest.dataset_version):
        raise PackageRefused(f"{where}: {DATAPACKAGE_FILE} disagrees with the manifest")


def _value(name: str, cell: str) -> object:
    if name in LIST_FIELDS:
        return cell.split(LIST_SEPARATOR) if cell else []
    return None if cell == "" else cell


def records_from_csv(data: bytes, where: str = "referrals.csv") -> list[MonitorRecord]:
    """The CSV's rows as records of the contract (the inverse of ``export.csv_text``)."""
    try:
        rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    except (UnicodeDecodeError, csv.Error):
        raise PackageRefused(f"{where}: {CSV_FILE} is not UTF-8 CSV") from None
    if not rows or tuple(rows[0]) != FIELDS:
        raise PackageRefused(f"{where}: the columns of {CSV_FILE} are not the contract's")
    records = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(FIELDS):
            raise PackageRefused(f"{where}: {CSV_FILE} line {number} has {len(row)} cells")
        try:
            records.append(
                MonitorRecord.model_validate(
                    {name: _value(name, cell) for name, cell in zip(FIELDS, row, strict=True)}
                )
            )
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(part) for part in first["loc"])
            raise PackageRefused(
                f"{where}: {CSV_FILE} line {number}, {field}: {first['msg']}"
            ) from None
    return records
