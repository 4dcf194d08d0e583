"""`brug deploy render`: the Strimzi resources are the ACL plan and the topic list, rendered
once more; nothing is written twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from adapters.clients import load_clients
from adapters.directory import load_directory
from adapters.kafka_acls import Grant, acl_plan, service_principal
from contracts import topics
from deploy.cli import app
from deploy.devstack.stack import DEFAULT_CLIENTS, DEFAULT_DIRECTORY
from deploy.render.strimzi import kafka_topics, users_of
from deploy.render.values import consumer_groups

DIRECTORY = load_directory(DEFAULT_DIRECTORY)
REGISTRY = load_clients(DEFAULT_CLIENTS)
_KAFKA_NAMES = {"Read": "READ", "Write": "WRITE", "Describe": "DESCRIBE"}


def _grants(user: dict[str, Any]) -> set[Grant]:
    """A KafkaUser's ACL rules read back as grants of the plan."""
    grants = set()
    for rule in user["spec"]["authorization"]["acls"]:
        resource = rule["resource"]
        for operation in rule["operations"]:
            grants.add(
                Grant(
                    user["name"],
                    _KAFKA_NAMES.get(operation, "IDEMPOTENT_WRITE"),  # type: ignore[arg-type]
                    resource["type"].upper(),
                    resource.get("name", "kafka-cluster"),
                    "PREFIXED" if resource.get("patternType") == "prefix" else "LITERAL",
                )
            )
    return grants


def test_the_kafka_users_are_the_acl_plan() -> None:
    users = users_of(REGISTRY)
    assert [user["name"] for user in users] == sorted({g.principal for g in acl_plan(REGISTRY)})
    rendered = set().union(*(_grants(user) for user in users))
    assert rendered == set(acl_plan(REGISTRY))
    for user in users:
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
        assert user["spec"]["authorization"]["type"] == "simple"


def test_the_topics_are_brugs_with_their_retention() -> None:
    organisations = [o.id for o in DIRECTORY.organisations]
    gp_systems = [c.client_id for c in REGISTRY.clients if c.kind.value == "gp"]
    wanted = dict(topics.all_topics(organisations, gp_systems))
    rendered = {t["name"]: t["spec"] for t in kafka_topics(DIRECTORY, REGISTRY)}
    assert rendered.keys() == wanted.keys()
    for name, spec in rendered.items():
        assert spec["topicName"] == name
        assert spec.get("config", {}) == wanted[name]
    three_days = 3 * 86400 * 1000
    assert rendered[topics.DEAD_LETTER]["config"] == {
        "retention.ms": str(three_days),
        "segment.ms": str(three_days // 10),
    }


def _may(principal: str, operation: str, resource: str, name: str) -> bool:
    return any(
        g.principal == principal
        and g.operation == operation
        and g.resource == resource
        and (name.startswith(g.name) if g.pattern == "PREFIXED" else name == g.name)
        for g in acl_plan(REGISTRY)
    )


def test_keda_measures_groups_the_service_itself_reads() -> None:
    """KEDA reads a group's lag as the service's principal: the plan must allow it."""
    groups = consumer_groups(DIRECTORY, REGISTRY)
    assert {len(groups["feedback"]), len(groups["gp-notify"])} == {
        len(DIRECTORY.organisations),
        sum(1 for c in REGISTRY.clients if c.kind.value == "gp"),
    }
    for service, consumed in groups.items():
        principal = service_principal(service)
        for entry in consumed:
            assert _may(principal, "READ", "GROUP", entry["group"]), (service, entry)
            assert _may(principal, "READ", "TOPIC", entry["topic"]), (service, entry)


def test_the_command_writes_helm_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRUG_DIRECTORY_PATH", str(DEFAULT_DIRECTORY))
    monkeypatch.setenv("BRUG_CLIENTS_PATH", str(DEFAULT_CLIENTS))
    output = tmp_path / "values.yaml"
    result = CliRunner().invoke(app, ["deploy", "render", "--output", str(output)])
    assert result.exit_code == 0, result.output
    values = yaml.safe_load(output.read_text())
    assert values["directory"]["json"] == DEFAULT_DIRECTORY.read_text()
    assert values["kafka"]["users"] == users_of(REGISTRY)
    assert values["kafka"]["topics"] == kafka_topics(DIRECTORY, REGISTRY)
