"""deploy/helm/brug rendered for the sample directory and the dev client registry with the
``helm`` binary (built once into ~/.cache/brug/bin from the Go module proxy), and every
object checked against the Kubernetes schemas or its operator's CRD schema."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.clients import ClientKind, load_clients
from contracts import topics
from deploy.devstack.paths import DEPLOY_DIR
from deploy.devstack.stack import DEFAULT_CLIENTS, DEFAULT_DIRECTORY, SERVICES
from deploy.render.chart import (
    UNVALIDATED_GROUPS,
    lint_chart,
    render_chart,
    validate_objects,
)
from deploy.render.values import render_values, values_yaml

REGISTRY = load_clients(DEFAULT_CLIENTS)
Objects = list[dict[str, Any]]


@pytest.fixture(scope="module")
def sample_values(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("chart") / "sample.values.yaml"
    path.write_text(values_yaml(render_values(DEFAULT_DIRECTORY, DEFAULT_CLIENTS)))
    return path


@pytest.fixture(scope="module")
def rendered(sample_values: Path) -> Objects:
    return render_chart([sample_values])


def _of(rendered: Objects, kind: str) -> dict[str, dict[str, Any]]:
    return {item["metadata"]["name"]: item for item in rendered if item["kind"] == kind}


def test_every_object_validates_against_its_schema(rendered: Objects) -> None:
    checked = list(validate_objects(rendered))
    assert [c for c in checked if c.problem] == []
    unvalidated = {c.api_version.split("/")[0] for c in checked if c.against is None}
    assert unvalidated <= UNVALIDATED_GROUPS
    against = Counter((c.kind, (c.against or "").split(" ")[0]) for c in checked)
    for kind in ("Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "Job"):
        assert against[(kind, "Kubernetes")] > 0, kind
    for kind in ("ScaledObject", "TriggerAuthentication", "ServiceMonitor", "PrometheusRule"):
        assert against[(kind, "CRD")] > 0, kind
    for kind in ("Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"):
        assert against[(kind, "Strimzi's")] > 0, kind


def test_the_validation_catches_what_the_api_server_would_refuse(rendered: Objects) -> None:
    deployment = copy.deepcopy(next(iter(_of(rendered, "Deployment").values())))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    scaled = copy.deepcopy(next(iter(_of(rendered, "ScaledObject").values())))
    scaled["spec"]["maxReplicaCount"] = "three"
    monitor = copy.deepcopy(_of(rendered, "ServiceMonitor")["brug"])
    monitor["spec"]["endpoints"][0]["scrapeEvery"] = "30s"
    user = copy.deepcopy(_of(rendered, "KafkaUser")["case-dynamo-amsterdam"])
    user["spec"]["authorization"]["acls"][0]["operations"] = ["Reed"]
    kafka = copy.deepcopy(_of(rendered, "Kafka")["brug"])
    kafka["spec"]["kafka"]["listners"] = []
    checked = [deployment, scaled, monitor, user, kafka]
    problems = [c.problem for c in validate_objects(checked)]
    assert all(problems), problems
    assert "httpGett" in str(problems[0])
    assert "three" in str(problems[1])
    assert "scrapeEvery" in str(problems[2])
    assert "operations[0]" in str(problems[3])
    assert "listners" in str(problems[4])


def test_helm_lint_passes(sample_values: Path) -> None:
    assert "0 chart(s) failed" in lint_chart([sample_values])


def test_without_rendered_values_the_chart_says_what_to_run() -> None:
    with pytest.raises(RuntimeError, match="brug deploy render"):
        render_chart([])


def _reached(user: dict[str, Any], topic_names: list[str], operation: str) -> set[str]:
    """The topics a KafkaUser's Strimzi ACL rules allow ``operation`` on."""
    reached = set()
    for rule in user["spec"]["authorization"]["acls"]:
        resource = rule["resource"]
        if resource["type"] != "topic" or operation not in rule["operations"]:
            continue
        name, prefix = resource["name"], resource.get("patternType") == "prefix"
        reached |= {t for t in topic_names if (t.startswith(name) if prefix else name in (t, "*"))}
    return reached


def test_each_party_reaches_only_its_own_topics(rendered: Objects) -> None:
    users = _of(rendered, "KafkaUser")
    topic_names = [item["spec"]["topicName"] for item in _of(rendered, "KafkaTopic").values()]
    assert topics.social_status("dynamo-amsterdam") in topic_names
    for client in REGISTRY.clients:
        if client.kind is ClientKind.MUNICIPALITY:  # figures over HTTPS only: no Kafka user
            assert client.client_id not in users
            continue
        user = users[client.client_id]
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == "brug"
        if client.kind is ClientKind.WELFARE:
            reads = {
                topics.social_referrals(client.organisation),
                topics.social_problems(client.organisation),
            }
            writes = {topics.social_status(client.organisation)}
        else:
            reads = {topics.gp_outcomes(client.client_id), topics.gp_changes(client.client_id)}
            writes = {topics.gp_referrals(client.client_id)}
        assert _reached(user, topic_names, "Read") == reads, client.client_id
        assert _reached(user, topic_names, "Write") == writes, client.client_id
        for rule in user["spec"]["authorization"]["acls"]:
            resource = rule["resource"]
            assert resource["type"] in ("topic", "group"), rule
            if resource["type"] == "group":
                assert resource["name"].startswith(client.client_id), rule


def test_every_service_is_probed_budgeted_and_measured(rendered: Objects) -> None:
    deployments = _of(rendered, "Deployment")
    budgets = _of(rendered, "PodDisruptionBudget")
    scaled = _of(rendered, "ScaledObject")
    assert len(deployments) == len(SERVICES)
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "metrics"}
        assert container["readinessProbe"]["httpGet"] == {
            "path": "/health/ready",
            "port": "metrics",
        }
        assert container["resources"]["requests"]["cpu"]
        labels = deployment["spec"]["selector"]["matchLabels"]
        assert budgets[name]["spec"]["selector"]["matchLabels"] == labels
        if name in scaled:  # KEDA owns the replica count
            assert "replicas" not in deployment["spec"]
            triggers = scaled[name]["spec"]["triggers"]
            assert {t["type"] for t in triggers} == {"kafka"}
            groups = [t["metadata"]["consumerGroup"].replace("_", "-") for t in triggers]
            assert all(group.startswith(name) for group in groups), groups
    assert set(scaled) == {
        f"brug-{s}" for s in ("router", "fhir-gateway", "webhook-delivery", "feedback", "gp-notify")
    }


def test_there_is_a_deployment_per_service_with_its_own_kafka_user(rendered: Objects) -> None:
    deployments = _of(rendered, "Deployment")
    wanted = {f"brug-{service.replace('_', '-')}" for service in SERVICES}
    assert set(deployments) == wanted, "add the service to deploy/helm/brug/values.yaml services"
    users = _of(rendered, "KafkaUser")
    for name, deployment in deployments.items():
        env = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["BRUG_KAFKA_USERNAME"]["value"] == name
        assert name in users
        assert env["BRUG_KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == name


def test_secrets_are_referenced_never_embedded(rendered: Objects) -> None:
    assert not [item for item in rendered if item["kind"] == "Secret"]
    sensitive = ("PASSWORD", "KEY", "SECRET", "DATABASE_URL", "TOKEN")
    for item in rendered:
        if item["kind"] not in ("Deployment", "Job"):
            continue
        for container in item["spec"]["template"]["spec"]["containers"]:
            for variable in container.get("env", []):
                if any(word in variable["name"] for word in sensitive):
                    assert "value" not in variable or variable["value"].startswith("/etc/brug/"), (
                        variable
                    )


def test_the_console_seals_dead_letters_with_keys_from_a_secret(rendered: Objects) -> None:
    deployments = _of(rendered, "Deployment")
    for name, deployment in deployments.items():
        env = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        if name == "brug-console":
            reference = env["BRUG_DEAD_LETTER_KEYS"]["valueFrom"]["secretKeyRef"]
            assert reference == {"name": "brug-dead-letter-keys", "key": "keys"}
        else:
            assert "BRUG_DEAD_LETTER_KEYS" not in env, name


def test_the_alerts_are_those_of_deploy_prometheus(rendered: Objects) -> None:
    rule = _of(rendered, "PrometheusRule")["brug"]
    alerts = yaml.safe_load((DEPLOY_DIR / "prometheus" / "alerts.yml").read_text())
    assert rule["spec"]["groups"] == alerts["groups"]
    monitor = _of(rendered, "ServiceMonitor")["brug"]
    assert {"targetLabel": "job", "replacement": "brug"} in monitor["spec"]["endpoints"][0][
        "relabelings"
    ]


def test_grafana_gets_the_dashboard(rendered: Objects) -> None:
    dashboard = _of(rendered, "ConfigMap")["brug-grafana-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((DEPLOY_DIR / "grafana" / "brug.json").read_text())
    assert json.loads(dashboard["data"]["brug.json"]) == shipped


def test_kafka_is_kraft_with_three_node_replicas_and_simple_authorization(
    rendered: Objects,
) -> None:
    kafka = _of(rendered, "Kafka")["brug"]["spec"]["kafka"]
    assert kafka["authorization"]["type"] == "simple"
    assert {listener["authentication"]["type"] for listener in kafka["listeners"]} == {
        "scram-sha-512"
    }
    assert all(listener["tls"] for listener in kafka["listeners"])
    pools = _of(rendered, "KafkaNodePool")
    assert {tuple(p["spec"]["roles"]) for p in pools.values()} == {("controller",), ("broker",)}
    assert all(p["spec"]["replicas"] == 3 for p in pools.values())
