"""compose.yaml is valid Compose and names every Brug service (no Docker engine here to run it).

The Compose Specification's JSON schema comes from the npm package ``dclint`` (a Compose
linter that ships the specification's current schema), fetched once into the cache.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from typing import Any

import jsonschema
import pytest
import yaml

from deploy.devstack.paths import REPO_ROOT, cache_dir
from deploy.devstack.stack import SERVICES

SCHEMA_PACKAGE = "dclint@3.1.0"
SCHEMA_MEMBER = "package/schemas/compose.schema.json"


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, Any]:
    target = cache_dir() / "compose-spec" / SCHEMA_PACKAGE / "compose.schema.json"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        packed = subprocess.run(
            ["npm", "pack", SCHEMA_PACKAGE, "--silent", "--pack-destination", str(target.parent)],
            capture_output=True,
            text=True,
            check=True,
        )
        with tarfile.open(target.parent / packed.stdout.strip().splitlines()[-1]) as archive:
            member = archive.extractfile(SCHEMA_MEMBER)
            assert member is not None
            target.write_bytes(member.read())
    return json.loads(target.read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())  # type: ignore[no-any-return]


def test_compose_file_is_valid_against_the_compose_specification(
    compose_schema: dict[str, Any], compose: dict[str, Any]
) -> None:
    jsonschema.Draft7Validator(compose_schema).validate(compose)


def test_the_schema_check_catches_a_broken_file(compose_schema: dict[str, Any]) -> None:
    broken = {"services": {"router": {"image": "x", "restart": "sometimes-maybe", "bogus": 1}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(compose_schema).validate(broken)


def test_every_brug_service_runs_in_compose_from_the_one_dockerfile(
    compose: dict[str, Any],
) -> None:
    defined = compose["services"]
    for service in SERVICES:
        assert service in defined, f"compose.yaml lacks service {service}"
        assert defined[service]["command"] == ["python", "-m", f"services.{service}"]
    for name, service in defined.items():
        if "build" in service:
            dockerfile = REPO_ROOT / service["build"]["context"] / service["build"]["dockerfile"]
            assert dockerfile == REPO_ROOT / "deploy" / "Dockerfile", name
            assert dockerfile.exists()


def test_every_service_compose_names_exists_in_the_code(compose: dict[str, Any]) -> None:
    infrastructure = {"kafka", "postgres", "setup"}
    for name in set(compose["services"]) - infrastructure:
        assert (REPO_ROOT / "services" / name / "__main__.py").exists(), name


def test_the_edges_publish_on_loopback_only(compose: dict[str, Any]) -> None:
    published = {
        name: service["ports"]
        for name, service in compose["services"].items()
        if "ports" in service
    }
    assert set(published) == {"fhir_gateway", "social_gateway", "console"}
    for name, ports in published.items():
        assert all(str(port).startswith("127.0.0.1:") for port in ports), name


def test_credentials_come_in_as_secrets_and_never_in_the_image(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if "build" not in service:
            continue
        assert "brug-clients" in service["secrets"], name
        assert service["environment"]["BRUG_CLIENTS_PATH"] == "/run/secrets/brug-clients", name
    console = compose["services"]["console"]
    assert console["environment"]["BRUG_OPERATORS_PATH"] == "/run/secrets/brug-operators"
    assert console["environment"]["BRUG_SECURE_COOKIES"] == "true"
    ignored = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    for development_only in (
        "deploy/clients/",
        "deploy/operators/",
        "deploy/kafka/dev-credentials.txt",
    ):
        assert development_only in ignored


def test_the_image_holds_every_package_a_service_imports() -> None:
    copied = {
        line.split()[1]
        for line in (REPO_ROOT / "deploy" / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and not line.startswith("COPY pyproject")
    }
    for package in ("contracts", "domain", "adapters", "services", "deploy"):
        assert package in copied, f"the Dockerfile does not copy {package}/"
