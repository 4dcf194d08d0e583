"""Flame graphs of running services with py-spy (a sampling profiler that attaches to a
pid; it needs ptrace rights, which root or ``kernel.yama.ptrace_scope=0`` gives).

``start_profiles`` starts one ``py-spy record`` per profiled service for the window;
``finish_profiles`` waits for them and says where the SVGs are.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from deploy.devstack.stack import DevStack

PROFILED = ("fhir_gateway", "router", "relay", "feedback", "gp_notify")


def start_profiles(
    stack: DevStack, folder: Path | None, seconds: float, *, prefix: str = ""
) -> list[tuple[subprocess.Popen[bytes], Path]]:
    if folder is None:
        return []
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    folder.mkdir(parents=True, exist_ok=True)
    running = []
    for status in stack.status():
        if status.name not in PROFILED or status.pid is None:
            continue
        svg = folder / f"{prefix}{status.name}.svg"
        command = [
            py_spy,
            "record",
            "--pid",
            str(status.pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            "200",
            "--nonblocking",  # do not pause the service while sampling it
            "--format",
            "flamegraph",
            "--output",
            str(svg),
        ]
        running.append((subprocess.Popen(command, stdout=subprocess.DEVNULL), svg))
    return running


def finish_profiles(running: list[tuple[subprocess.Popen[bytes], Path]]) -> None:
    for process, svg in running:
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
        state = "written" if svg.exists() else f"not written (py-spy exit {process.returncode})"
        print(f"flame graph {svg}: {state}", file=sys.stderr)
