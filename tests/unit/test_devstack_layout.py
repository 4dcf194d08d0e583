"""The dev stack's layout: ``--brokers 3`` writes three voters' configurations of one
cluster (replication factor 3, min.insync.replicas 2), ``--replicas 2`` names a second
instance of every service with its own metrics port and a shared HTTP port, and
``status``/``down`` in a fresh shell find the layout the last ``up`` used."""

from __future__ import annotations

import json
from pathlib import Path

from adapters.runtime.serving import shared_listener
from deploy.devstack.kafka import KafkaCluster, KafkaNode
from deploy.devstack.stack import LAYOUT_FILE, DevStack, StackConfig
from tests.conftest import free_port


def _properties(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_a_cluster_is_three_voters_with_replication_factor_three(tmp_path: Path) -> None:
    cluster = KafkaCluster(tmp_path, 29000, 29001, size=3)
    nodes = cluster.nodes
    assert [(n.name, n.port, n.controller_port) for n in nodes] == [
        ("kafka-1", 29000, 29001), ("kafka-2", 29002, 29003), ("kafka-3", 29004, 29005)
    ]  # fmt: skip
    assert cluster.bootstrap_servers == "127.0.0.1:29000,127.0.0.1:29002,127.0.0.1:29004"
    assert len({n.cluster_id for n in nodes}) == 1, "one cluster id for every node"
    for i, node in enumerate(nodes, start=1):
        config = _properties(node._write_config())
        assert config["node.id"] == str(i)
        assert config["controller.quorum.voters"] == (
            "1@127.0.0.1:29001,2@127.0.0.1:29003,3@127.0.0.1:29005"
        )
        assert config["default.replication.factor"] == "3"
        assert config["offsets.topic.replication.factor"] == "3"
        assert config["min.insync.replicas"] == "2"
        assert config["transaction.state.log.min.isr"] == "2"
        assert node.home == tmp_path / f"kafka-{i}"


def test_one_node_stays_a_standalone_quorum_with_replication_factor_one(tmp_path: Path) -> None:
    config = _properties(KafkaNode(tmp_path, 29000, 29001, secured=True)._write_config())
    assert config["node.id"] == "1"
    assert config["controller.quorum.bootstrap.servers"] == "127.0.0.1:29001"
    assert "controller.quorum.voters" not in config
    assert (config["default.replication.factor"], config["min.insync.replicas"]) == ("1", "1")


def test_two_replicas_name_a_second_instance_of_every_service(tmp_path: Path) -> None:
    stack = DevStack(StackConfig(state_dir=tmp_path, replicas=2))
    instances = stack.instances()
    assert len(instances) == 2 * len(stack.services)
    assert {"router", "router-2", "fhir_gateway", "fhir_gateway-2"} <= set(instances)
    assert stack.service_of("fhir_gateway-2") == "fhir_gateway"
    assert stack.service_of("case-system-dynamo-amsterdam") is None
    ports = [stack.metrics_port(name) for name in instances]
    assert len(set(ports)) == len(ports), "each instance its own metrics port"
    assert set(stack.metrics_urls()) == set(instances)
    second = stack.service_environment("fhir_gateway-2")
    first = stack.service_environment("fhir_gateway")
    assert second["BRUG_HTTP_REUSE_PORT"] == "true"
    assert second["BRUG_FHIR_PORT"] == first["BRUG_FHIR_PORT"], "they share the HTTP port"
    assert second["BRUG_KAFKA_USERNAME"] == first["BRUG_KAFKA_USERNAME"] == "brug-fhir-gateway"
    assert second["BRUG_METRICS_PORT"] != first["BRUG_METRICS_PORT"]
    commands = stack._commands()
    assert commands["router-2"][-1] == "services.router"


def test_one_replica_keeps_the_plain_names(tmp_path: Path) -> None:
    stack = DevStack(StackConfig(state_dir=tmp_path))
    assert stack.instances() == list(stack.services)
    assert stack.service_environment("router")["BRUG_HTTP_REUSE_PORT"] == "false"


def test_a_fresh_shell_finds_the_layout_the_last_up_used(tmp_path: Path) -> None:
    (tmp_path / LAYOUT_FILE).write_text(json.dumps({"brokers": 3, "replicas": 2}))
    config = StackConfig.from_environment(tmp_path)
    assert (config.brokers, config.replicas) == (3, 2)
    assert isinstance(DevStack(config).kafka, KafkaCluster)
    given = StackConfig.from_environment(tmp_path, brokers=1, replicas=1)
    assert (given.brokers, given.replicas) == (1, 1)
    assert (StackConfig.from_environment(tmp_path / "none").replicas) == 1


def test_a_leftover_instance_is_stopped_by_down_too(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    for name in ("router-3", "kafka-2", "router"):
        (tmp_path / "run" / f"{name}.pid").write_text("1 1")
    stack = DevStack(StackConfig(state_dir=tmp_path, replicas=2))
    assert stack._leftovers() == {"router-3", "router"}


def test_two_listeners_share_one_port() -> None:
    port = free_port()
    first, second = shared_listener("127.0.0.1", port), shared_listener("127.0.0.1", port)
    try:
        assert first.getsockname() == second.getsockname() == ("127.0.0.1", port)
    finally:
        first.close()
        second.close()
