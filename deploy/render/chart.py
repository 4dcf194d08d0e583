"""The chart rendered and checked offline: ``helm template`` with a ``helm`` built from the Go
module proxy, every object validated against the Kubernetes schemas (``kubernetes-validate``)
or, for an operator's resource, against its CustomResourceDefinition's schema where a
package registry serves the CRD (KEDA and the Prometheus operator: their Go modules), and
Strimzi's resources against Strimzi's own Java model (Maven Central's io.strimzi:api).

Downloads go to the cache (``~/.cache/brug``: ``bin/helm``, ``gomod/``, ``m2/``), once per
machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate.utils as kubernetes_schemas
import yaml

from deploy.devstack.paths import DEPLOY_DIR, cache_dir

CHART = DEPLOY_DIR / "helm" / "brug"
HELM_MODULE = "helm.sh/helm/v3"
HELM_VERSION = "v3.22.0"
# The Kubernetes version the chart is rendered for and validated against.
KUBE_VERSION = "1.33.0"
BUILD_TIMEOUT_SECONDS = 1800
DOWNLOAD_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class CrdSource:
    """CRD YAML files inside a Go module (``go mod download`` fetches it from the proxy)."""

    module: str
    version: str
    folder: str
    files: tuple[str, ...]


CRD_SOURCES = (
    CrdSource(
        "github.com/kedacore/keda/v2",
        "v2.21.0",
        "config/crd/bases",
        ("keda.sh_scaledobjects.yaml", "keda.sh_triggerauthentications.yaml"),
    ),
    CrdSource(
        "github.com/prometheus-operator/prometheus-operator",
        "v0.85.0",
        "example/prometheus-operator-crd",
        (
            "monitoring.coreos.com_servicemonitors.yaml",
            "monitoring.coreos.com_prometheusrules.yaml",
        ),
    ),
)
# Strimzi publishes its CRD YAML only with its releases; Maven Central's io.strimzi:api holds
# its Java model, which checks the Strimzi objects instead (strimzi/StrimziCheck.java).
STRIMZI_GROUP = "kafka.strimzi.io"
STRIMZI_POM = Path(__file__).resolve().parent / "strimzi" / "pom.xml"
STRIMZI_CHECK = STRIMZI_POM.parent / "StrimziCheck.java"
# No registry reachable here serves CloudNativePG's CRDs (the Go module proxy refuses its
# module) nor a model of them: its Cluster goes unchecked.
UNVALIDATED_GROUPS = frozenset({"postgresql.cnpg.io"})


def _go() -> str:
    found = shutil.which("go") or next(
        (str(p) for p in (Path("/usr/local/go/bin/go"),) if p.exists()), None
    )
    if found is None:
        raise RuntimeError("the Go toolchain is needed to build helm and fetch CRDs (apt: golang)")
    return found


def _go_environment() -> dict[str, str]:
    return {
        **os.environ,
        "GOMODCACHE": str(cache_dir() / "gomod"),
        "GOFLAGS": "-mod=mod -buildvcs=false",
        "CGO_ENABLED": "0",
    }


def helm_binary() -> Path:
    """``~/.cache/brug/bin/helm``, built from the Go module proxy the first time (minutes)."""
    binary = cache_dir() / "bin" / "helm"
    if binary.exists() and _built_version(binary) == HELM_VERSION:
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [_go(), "install", f"{HELM_MODULE}/cmd/helm@{HELM_VERSION}"],
        env={**_go_environment(), "GOBIN": str(binary.parent)},
        cwd=tempfile.gettempdir(),  # outside any module
        check=True,
        timeout=BUILD_TIMEOUT_SECONDS,
    )
    return binary


def _built_version(binary: Path) -> str | None:
    """The helm module version ``go install`` recorded in the binary (``go version -m``)."""
    try:
        info = subprocess.run(
            [_go(), "version", "-m", str(binary)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    except (RuntimeError, subprocess.SubprocessError):
        return None
    for line in info.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[0] == "mod" and fields[1] == HELM_MODULE:
            return fields[2]
    return None


def render_chart(
    values_files: Sequence[Path], *, set_values: Sequence[str] = (), release: str = "brug"
) -> list[dict[str, Any]]:
    """``helm template`` of the chart: every object it would create (hooks included)."""
    command = [str(helm_binary()), "template", release, str(CHART), "--kube-version", KUBE_VERSION]
    for values in values_files:
        command += ["--values", str(values)]
    for assignment in set_values:
        command += ["--set", assignment]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"helm template failed: {done.stderr.strip()}")
    return [item for item in yaml.safe_load_all(done.stdout) if item]


def lint_chart(values_files: Sequence[Path]) -> str:
    """``helm lint --strict``: raises with its findings when it fails."""
    command = [str(helm_binary()), "lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION]
    for values in values_files:
        command += ["--values", str(values)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"helm lint failed: {done.stdout.strip()} {done.stderr.strip()}")
    return done.stdout


def _module_dir(source: CrdSource) -> Path:
    done = subprocess.run(
        [_go(), "mod", "download", "-json", f"{source.module}@{source.version}"],
        env=_go_environment(),
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        timeout=DOWNLOAD_TIMEOUT_SECONDS,
    )
    answer = json.loads(done.stdout or "{}")
    if done.returncode != 0 or "Dir" not in answer:
        raise RuntimeError(f"go mod download {source.module}: {answer.get('Error', done.stderr)}")
    return Path(answer["Dir"])


@cache
def crd_schemas() -> dict[tuple[str, str], tuple[dict[str, Any], str]]:
    """(apiVersion, kind) → (JSON Schema, where it came from), of every CRD in
    ``CRD_SOURCES``."""
    schemas: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
    for source in CRD_SOURCES:
        folder = _module_dir(source) / source.folder
        for name in source.files:
            crd = yaml.safe_load((folder / name).read_text())
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = json_schema(version["schema"]["openAPIV3Schema"])
                origin = f"CRD {name} of {source.module}@{source.version}"
                schemas[(f"{group}/{version['name']}", kind)] = (schema, origin)
    return schemas


def json_schema(openapi: dict[str, Any], *, root: bool = True) -> dict[str, Any]:
    """A CRD's structural OpenAPI v3 schema as a strict JSON Schema: Kubernetes' extensions
    spelt out (int-or-string, nullable, preserve-unknown-fields) and, like the API server's
    strict field validation, no field the schema does not name."""
    schema = {k: v for k, v in openapi.items() if not k.startswith("x-kubernetes-")}
    if openapi.get("x-kubernetes-int-or-string"):
        schema.pop("type", None)
        schema["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.pop("nullable", False) and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    if "properties" in schema:
        schema["properties"] = {
            key: json_schema(value, root=False) for key, value in schema["properties"].items()
        }
        if root:  # apiVersion, kind and metadata are the API server's, not the CRD's
            schema["properties"].pop("metadata", None)
        elif (
            "additionalProperties" not in schema
            and not openapi.get("x-kubernetes-preserve-unknown-fields")
            and not openapi.get("x-kubernetes-embedded-resource")
        ):
            schema["additionalProperties"] = False
    if isinstance(schema.get("additionalProperties"), dict):
        schema["additionalProperties"] = json_schema(schema["additionalProperties"], root=False)
    if isinstance(schema.get("items"), dict):
        schema["items"] = json_schema(schema["items"], root=False)
    for combinator in ("allOf", "anyOf", "oneOf"):
        if combinator in openapi:
            schema[combinator] = [json_schema(part, root=False) for part in openapi[combinator]]
    if "not" in schema:
        schema["not"] = json_schema(schema["not"], root=False)
    return schema


@dataclass(frozen=True)
class Checked:
    kind: str
    name: str
    api_version: str
    against: str | None  # which schema validated it; None: none is available here
    problem: str | None = None


def _name(item: dict[str, Any]) -> str:
    return str(item.get("metadata", {}).get("name", "?"))


def strimzi_version() -> str:
    """The io.strimzi:api version deploy/render/strimzi/pom.xml names."""
    found = re.search(r"<version>([^<]+)</version>\s*</dependency>", STRIMZI_POM.read_text())
    if found is None:
        raise RuntimeError(f"no io.strimzi:api version in {STRIMZI_POM}")
    return found.group(1)


def _strimzi_classpath() -> str:
    """The classpath of io.strimzi:api and its dependencies (Maven, into the cache's m2)."""
    listed = cache_dir() / f"strimzi-api-{strimzi_version()}.classpath"
    if not listed.exists():
        listed.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(STRIMZI_POM),
                "dependency:build-classpath",
                f"-Dmdep.outputFile={listed}",
                f"-Dmaven.repo.local={cache_dir() / 'm2'}",
            ],
            check=True,
            timeout=DOWNLOAD_TIMEOUT_SECONDS,
        )
    return listed.read_text().strip()


def check_strimzi(items: Sequence[dict[str, Any]]) -> dict[tuple[str, str], str | None]:
    """(kind, name) → None, or what Strimzi's model says is wrong with the object."""
    if not items:
        return {}
    done = subprocess.run(
        ["java", "-cp", _strimzi_classpath(), str(STRIMZI_CHECK)],
        input=json.dumps(list(items)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    results: dict[tuple[str, str], str | None] = {}
    for line in done.stdout.splitlines():
        verdict, kind, rest = line.split(" ", 2)
        name, _, problem = rest.partition(": ")
        results[(kind, name)] = problem if verdict == "problem" else None
    if done.returncode != 0 or len(results) != len(items):
        raise RuntimeError(f"the Strimzi check failed: {done.stderr.strip()[-2000:]}")
    return results


def strimzi_origin() -> str:
    return f"Strimzi's Java model io.strimzi:api:{strimzi_version()}"


def validate_objects(items: Iterable[dict[str, Any]]) -> Iterator[Checked]:
    """Each object checked against the best schema there is: Kubernetes' own (strict: no
    unknown field), a CRD's, Strimzi's model, or none (``UNVALIDATED_GROUPS``: ``against``
    is None)."""
    items = list(items)
    strimzi = check_strimzi(
        [i for i in items if str(i.get("apiVersion")).split("/")[0] == STRIMZI_GROUP]
    )
    for item in items:
        api_version, kind = str(item.get("apiVersion")), str(item.get("kind"))
        if (kind, _name(item)) in strimzi and api_version.startswith(STRIMZI_GROUP):
            yield Checked(
                kind, _name(item), api_version, strimzi_origin(), strimzi[(kind, _name(item))]
            )
            continue
        found = crd_schemas().get((api_version, kind))
        if found is not None:
            schema, origin = found
            errors = sorted(
                jsonschema.Draft202012Validator(schema).iter_errors(item), key=lambda e: e.path
            )
            problem = "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5]) or None
            yield Checked(kind, _name(item), api_version, origin, problem)
            continue
        if api_version.split("/")[0] in UNVALIDATED_GROUPS:
            yield Checked(kind, _name(item), api_version, None)
            continue
        try:
            version = kubernetes_schemas.validate(item, KUBE_VERSION, strict=True)
        except kubernetes_schemas.SchemaNotFoundError:
            yield Checked(kind, _name(item), api_version, None, "no schema for this kind")
        except kubernetes_schemas.ValidationError as error:
            origin = f"Kubernetes {error.version} schema (strict)"
            yield Checked(kind, _name(item), api_version, origin, str(error.message))
        else:
            yield Checked(kind, _name(item), api_version, f"Kubernetes {version} schema (strict)")


def fetch_tools() -> None:
    """Build helm and fetch the CRDs and Strimzi's model into the cache, once per machine.

    deploy/test.sh calls this before pytest: building helm takes minutes on a cold machine,
    longer than a test's timeout.
    """
    helm_binary()
    crd_schemas()
    _strimzi_classpath()


if __name__ == "__main__":
    fetch_tools()
