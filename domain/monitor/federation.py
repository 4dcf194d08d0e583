"""Federation: several regions' Brug installations, one national picture (issue 14).

Each installation exports its pseudonymous rows as a package signed with its own key
(``adapters/monitor/packages.py``); a merge verifies every package, combines the **rows**
and only then computes the figures and their disclosure control. It never adds up
tables that were already suppressed: a count too small to show in each region may well
be large enough nationally, and a cell shown in each region may need hiding nationally
to keep another one hidden (secondary suppression works on the national cube).

The rules here are pure: what a valid manifest is, which packages may be merged, and the
merged rows. A referral is in one installation only (its GP's region), and its pseudonym
is an HMAC under that installation's own monitor key, so nothing can link one referral
across installations: a pseudonym in two packages means the same rows twice (one
package merged twice, or two installations sharing a dataset), and the merge refuses it
rather than count those referrals twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from contracts.monitor import MonitorRecord
from domain.monitor.disclosure import Profile
from domain.monitor.periods import Period
from domain.monitor.reports import NATIONAL, ProtectedYear, protect_year

PACKAGE_FORMAT = "brug-monitor-package/1"
"""The package layout's own version (manifest and signature), apart from the dataset's."""
MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"
INSTALLATION_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class PackageRefused(ValueError):
    """A package, or a set of packages, that may not be merged; the message says why in
    one line."""


@dataclass(frozen=True)
class Manifest:
    """What an installation signs: who it is, which period and dataset version, and the
    SHA-256 digest of every file of the package."""

    installation: str
    period: str | None
    dataset_version: str
    files: Mapping[str, str]
    format: str = PACKAGE_FORMAT

    def to_bytes(self) -> bytes:
        """The signed bytes: canonical JSON (sorted keys, no spaces), one line."""
        document = {
            "format": self.format,
            "installation": self.installation,
            "period": self.period,
            "dataset_version": self.dataset_version,
            "files": dict(sorted(self.files.items())),
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise PackageRefused("the manifest is not JSON") from None
        if not isinstance(document, dict):
            raise PackageRefused("the manifest is not a JSON object")
        files = document.get("files")
        manifest = cls(
            installation=_text(document, "installation"),
            period=document.get("period") if document.get("period") is not None else None,
            dataset_version=_text(document, "dataset_version"),
            files=files if isinstance(files, dict) else {},
            format=_text(document, "format"),
        )
        problem = manifest.problem()
        if problem:
            raise PackageRefused(problem)
        return manifest

    def problem(self) -> str | None:
        """Why this is not a valid manifest, or None."""
        if self.format != PACKAGE_FORMAT:
            return f"unknown package format {self.format!r} (this Brug reads {PACKAGE_FORMAT})"
        if not INSTALLATION_PATTERN.match(self.installation):
            return f"not an installation id: {self.installation!r}"
        if self.period is not None:
            if not isinstance(self.period, str):
                return "the manifest's period is not text"
            try:
                Period.parse(self.period)
            except ValueError as error:
                return str(error)
        if not re.match(r"^[0-9]+\.[0-9]+\.[0-9]+$", self.dataset_version):
            return f"not a dataset version: {self.dataset_version!r}"
        if not self.files:
            return "the manifest lists no files"
        for name, digest in self.files.items():
            reserved = name in (MANIFEST_FILE, SIGNATURE_FILE)
            if not isinstance(name, str) or not _FILE_NAME.match(name) or reserved:
                return f"not a file the manifest may list: {name!r}"
            if not isinstance(digest, str) or not _DIGEST.match(digest):
                return f"{name}: not a SHA-256 digest"
        return None


def _text(document: dict[str, Any], key: str) -> str:
    value = document.get(key)
    if not isinstance(value, str):
        raise PackageRefused(f"the manifest has no {key}")
    return value


@dataclass(frozen=True)
class Package:
    """A verified package: its manifest and its rows."""

    manifest: Manifest
    records: tuple[MonitorRecord, ...]

    @property
    def installation(self) -> str:
        return self.manifest.installation


def check_mergeable(packages: Sequence[Package], dataset_version: str, period: Period) -> None:
    """Refuse (``PackageRefused``) what may not be merged into ``period``'s report:
    no packages, an installation twice, another dataset version than this Brug reads
    (the columns' meaning may differ), packages of different periods, a period that does
    not cover the report's, a row outside its package's period, or a pseudonym in two
    packages."""
    if not packages:
        raise PackageRefused("no packages to merge")
    seen: set[str] = set()
    for package in packages:
        if package.installation in seen:
            raise PackageRefused(f"installation {package.installation} is in two packages")
        seen.add(package.installation)
        if package.manifest.dataset_version != dataset_version:
            raise PackageRefused(
                f"{package.installation}: dataset version {package.manifest.dataset_version}, "
                f"this Brug reads {dataset_version}"
            )
    periods = {package.manifest.period for package in packages}
    if len(periods) > 1:
        shown = ", ".join(sorted(p or "all" for p in periods))
        raise PackageRefused(f"the packages cover different periods ({shown})")
    (covered,) = periods
    if covered is not None and not set(period.months()) <= set(Period.parse(covered).months()):
        raise PackageRefused(f"the packages cover {covered}, not {period}")
    owner: dict[str, str] = {}
    for package in packages:
        for record in package.records:
            if covered is not None and not Period.parse(covered).contains(record.referral_month):
                raise PackageRefused(
                    f"{package.installation}: a referral of {record.referral_month}, "
                    f"outside the package's period {covered}"
                )
            other = owner.setdefault(record.pseudonym, package.installation)
            if other != package.installation:
                raise PackageRefused(
                    f"a referral is in both {other} and {package.installation}: "
                    "the same rows twice (each referral belongs to one installation)"
                )


def merged_records(packages: Sequence[Package]) -> tuple[MonitorRecord, ...]:
    """The union of the packages' rows (after ``check_mergeable``)."""
    return tuple(record for package in packages for record in package.records)


def merge(
    packages: Sequence[Package], dataset_version: str, period: Period, profile: Profile
) -> ProtectedYear:
    """The national cube of the merged rows, protected after the merge."""
    check_mergeable(packages, dataset_version, period)
    return protect_year(merged_records(packages), period.year, profile)


def national_report(
    packages: Sequence[Package], protected: ProtectedYear, period: Period
) -> dict[str, Any]:
    """The nation's and every municipality's figures for ``period``, with where they came
    from (installation and row count, never a row)."""
    municipalities = sorted({key[2] for key in protected.counts if key[2][0] == "municipality"})
    return {
        "installations": [
            {"installation": p.installation, "referrals": len(p.records)} for p in packages
        ],
        "national": protected.report(NATIONAL, period),
        "municipalities": [protected.report(scope, period) for scope in municipalities],
    }
