"""HAPI FHIR's R4 instance validator, offline, for checking what Brug writes.

``tests/hapi/pom.xml`` names the jars (Maven Central: ``hapi-fhir-validation`` with the R4
structures and validation resources); ``tests/hapi/Validate.java`` is a small main that
validates every ``*.json`` of a folder in one JVM (its start-up is the slow part). Both are
fetched and compiled once into the cache (``~/.cache/brug/hapi-<version>-<digest>``), keyed by
the two files' content. ``deploy/test.sh`` warms it (``python -m tests.hapi_validator``);
a test fixture does the same on a machine where it is cold.

What cannot be checked offline is not an error: profiles that are not in the R4 core
package (the Subscriptions Backport IG's) and code systems that are not either (Brug's own
``https://brug.nl/...`` systems) come back as ``warning``/``information`` or are listed in
``UNCHECKABLE``; everything else the validator calls an error fails the caller's test.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from deploy.devstack.paths import cache_dir

HAPI_DIR = Path(__file__).resolve().parent / "hapi"
POM = HAPI_DIR / "pom.xml"
MAIN = HAPI_DIR / "Validate.java"
# Profiles from implementation guides the offline R4 core package does not hold: their
# references cannot be resolved, so they are reported as not checked (the resource itself
# is still validated against the base R4 definition).
OFFLINE_PROFILE_PREFIXES = ("http://hl7.org/fhir/uv/subscriptions-backport/",)
_UNRESOLVED_PROFILE = re.compile(
    r"Profile reference '([^']+)' has not been checked because it could not be found"
    r"|Failed to retrieve profile with url=(\S+)"
)


@dataclass(frozen=True)
class Issue:
    severity: str  # fatal, error, warning, information
    location: str
    message: str


def _version() -> str:
    match = re.search(r"<hapi\.version>([^<]+)</hapi\.version>", POM.read_text())
    if match is None:
        raise RuntimeError(f"{POM} does not pin <hapi.version>")
    return match.group(1)


def home() -> Path:
    digest = hashlib.sha256(POM.read_bytes() + MAIN.read_bytes()).hexdigest()[:12]
    return cache_dir() / f"hapi-{_version()}-{digest}"


def ensure_validator() -> Path:
    """Fetch the jars and compile the main unless the cache has them; return its folder."""
    folder = home()
    if (folder / ".complete").exists():
        return folder
    for tool in ("mvn", "javac", "java"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is needed for the HAPI validator (Java 17 JDK, Maven)")
    libs, classes = folder / "libs", folder / "classes"
    libs.mkdir(parents=True, exist_ok=True)
    classes.mkdir(parents=True, exist_ok=True)
    _run(
        [
            "mvn",
            "-q",
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            f"-Dmaven.repo.local={cache_dir() / 'm2'}",
            "-DincludeScope=runtime",
        ],
        "fetching the HAPI FHIR validator's jars",
    )
    _run(
        ["javac", "-nowarn", "-cp", f"{libs}/*", "-d", str(classes), str(MAIN)],
        "compiling tests/hapi/Validate.java",
    )
    (folder / ".complete").touch()
    return folder


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{result.stdout}{result.stderr}")


def validate(folder: Path) -> dict[str, list[Issue]]:
    """Every ``*.json`` resource in ``folder``, validated in one JVM: file name → issues."""
    validator = ensure_validator()
    result = subprocess.run(
        [
            "java",
            "-Xmx1g",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",  # a short batch: the quick compiler wins
            "-cp",
            f"{validator / 'libs'}/*:{validator / 'classes'}",
            "Validate",
            str(folder),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the HAPI validator failed:\n{result.stderr[-4000:]}")
    report = json.loads(result.stdout)
    return {name: [Issue(**issue) for issue in issues] for name, issues in report.items()}


def not_checked_offline(issue: Issue) -> str | None:
    """The profile an issue says could not be resolved, if it is one known to be offline."""
    match = _UNRESOLVED_PROFILE.search(issue.message)
    profile = next((group for group in match.groups() if group), None) if match else None
    if profile and profile.startswith(OFFLINE_PROFILE_PREFIXES):
        return profile
    return None


def errors(issues: list[Issue]) -> list[Issue]:
    """The issues that fail a check: errors and fatals, except unresolvable offline profiles."""
    return [
        issue
        for issue in issues
        if issue.severity in ("error", "fatal") and not_checked_offline(issue) is None
    ]


if __name__ == "__main__":  # deploy/test.sh: warm the cache before the tests run
    print(f"[brug] HAPI FHIR validator ready in {ensure_validator()}", file=sys.stderr)
