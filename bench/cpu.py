"""Where the CPU goes: each process's CPU time (user + system, with its children: PostgreSQL's
backends are children of the postmaster) over a measured window, per referral.

The window is what a benchmark measures, so the table answers "how many ms of CPU did one
referral cost in the FHIR edge, the router, the relay, Kafka, PostgreSQL and the load
generator", summed the way the issue's target (server CPU per referral) counts it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from deploy.devstack.stack import DevStack

LOAD_GENERATOR = "load generator"
# Not Brug's server CPU: the GP clients and the case systems the benchmark plays.
NOT_SERVER = frozenset({LOAD_GENERATOR})


def stack_processes(stack: DevStack) -> dict[str, int]:
    """The pids to watch: Kafka, PostgreSQL, every running service, and this process."""
    found = {
        status.name: status.pid
        for status in stack.status()
        if status.pid is not None and status.name != "postgres"
    }
    if (postmaster := _postmaster_pid(stack.postgres.data_dir)) is not None:
        found["postgres"] = postmaster
    found[LOAD_GENERATOR] = os.getpid()
    return found


def _own_cpu_seconds() -> float:
    """This process alone: the stack's services, Kafka and PostgreSQL are its children, and
    py-spy too, none of which is load."""
    times = psutil.Process().cpu_times()
    return times.user + times.system


def _postmaster_pid(data_dir: Path) -> int | None:
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        return None  # an external database: not ours to count
    return int(pid_file.read_text().split("\n", 1)[0])


def _cpu_seconds(pid: int) -> float:
    """The process's CPU time plus its live children's (a child gone meanwhile is lost:
    the services' connection pools keep their backends for the whole window)."""
    try:
        root = psutil.Process(pid)
        total = 0.0
        for process in [root, *root.children(recursive=True)]:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total
    except psutil.NoSuchProcess:
        return 0.0


@dataclass
class CpuMeter:
    """``start()`` then ``stop()`` around a window; ``per_item_ms`` divides by the work done."""

    pids: dict[str, int]
    _started: dict[str, float] = field(default_factory=dict)
    spent: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self._started = {name: self._seconds(name, pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        self.spent = {
            name: self._seconds(name, pid) - self._started.get(name, 0.0)
            for name, pid in self.pids.items()
        }
        return self.spent

    @staticmethod
    def _seconds(name: str, pid: int) -> float:
        return _own_cpu_seconds() if name == LOAD_GENERATOR else _cpu_seconds(pid)

    def per_item_ms(self, items: int) -> dict[str, float]:
        return {name: seconds * 1000 / max(items, 1) for name, seconds in self.spent.items()}


def cpu_table(meter: CpuMeter, items: int, what: str) -> str:
    """A Markdown table: CPU ms per ``what`` for each process, and the server total."""
    per_item = meter.per_item_ms(items)
    lines = [f"| process | CPU ms per {what} |", "|---|---|"]
    for name, ms in sorted(per_item.items(), key=lambda item: -item[1]):
        lines.append(f"| {name} | {ms:.2f} |")
    server = sum(ms for name, ms in per_item.items() if name not in NOT_SERVER)
    lines.append(f"| **server total** (all but the load generator) | **{server:.2f}** |")
    return "\n".join(lines)
