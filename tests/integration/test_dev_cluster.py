"""``brug dev up --brokers 3 --replicas 2``: a three-node KRaft cluster and two instances of
every service come up ready, carry a referral to the case system and its feedback back,
and ``brug dev down`` leaves no process and no port behind. (``bench/chaos.py`` runs the
same stack through kills at 10,000 referrals.)"""

from __future__ import annotations

import json
import subprocess

import pytest

from bench.chaos import BRUG, Stack
from deploy.devstack.processes import port_is_free
from deploy.devstack.stack import SERVICES
from tests.helpers import eventually
from tests.integration.test_dev_stack import processes_mentioning

pytestmark = pytest.mark.integration


def test_a_cluster_with_every_service_twice_works_and_leaves_nothing_behind() -> None:
    stack = Stack(brokers=3, replicas=2)
    try:
        stack.up()
        eventually(stack.all_ready, "every instance's /health/ready", 60, 1.0)
        status = subprocess.run(
            [*BRUG, "dev", "status", "--json"], env=stack.env, capture_output=True, text=True
        )
        healthy = {item["name"]: item["healthy"] for item in json.loads(status.stdout)}
        instances = {f"{service}-2" for service in SERVICES} | set(SERVICES)
        assert instances <= {name for name, ok in healthy.items() if ok}, healthy
        assert {"kafka-1", "kafka-2", "kafka-3"} <= {name for name, ok in healthy.items() if ok}
        demo = subprocess.run(
            [*BRUG, "demo"], env=stack.env, capture_output=True, text=True, timeout=120
        )
        assert demo.returncode == 0, demo.stderr
        assert "fetched the details (HTTP 200)" in demo.stdout
    finally:
        stack.down()
    assert processes_mentioning(str(stack.state_dir)) == []
    ports = [stack.base + offset for offset in range(10)]
    ports += [stack.metrics_base + offset for offset in range(60)]
    eventually(lambda: all(port_is_free(port) for port in ports), "every port free", 10)
