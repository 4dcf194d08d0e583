"""The dev stack's process model: stopping waits for the whole group and its ports, SIGKILL
after the grace period, stale pid files are not trusted, a failed start shows its log.

Real short-lived subprocesses on loopback; every wait is bounded."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deploy.devstack.processes import (
    ManagedProcess,
    port_is_free,
    stop_all,
    wait_until_ports_free,
)
from deploy.devstack.stack import DevStack, StackConfig
from tests.helpers import eventually

# Prints what the test waits for, then sleeps; ``{ignore}`` lets it ignore SIGTERM.
SLEEPER = """
import signal, time
{ignore}
print("ready", flush=True)
time.sleep(60)
"""
IGNORE_TERM = "signal.signal(signal.SIGTERM, signal.SIG_IGN)"
# Holds a loopback listener (as the stack's servers do, SO_REUSEADDR) and prints its port.
PORT_HOLDER = """
import socket, time
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 0))
server.listen()
print("port", server.getsockname()[1], flush=True)
time.sleep(60)
"""
# A leader that starts ``{child}`` (code) in its process group and prints the child's pid;
# ``{then}`` is what the leader does next (nothing: it exits).
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", {child!r}])
print("child", child.pid, flush=True)
{then}
"""


def alive(pid: int) -> bool:
    """Alive and no zombie (a zombie of ours is reaped on the way)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}").exists() else ""
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def logged(process: ManagedProcess, word: str) -> list[str]:
    """The words after ``word`` on the first log line starting with it (waiting for it)."""
    found: list[list[str]] = []

    def has_line() -> bool:
        text = process.log_file.read_text() if process.log_file.exists() else ""
        found[:] = [line.split()[1:] for line in text.splitlines() if line.startswith(word)]
        return bool(found)

    eventually(has_line, f"{process.name} logging {word!r}", timeout=10, interval=0.02)
    return found[0]


def start(process: ManagedProcess, code: str) -> int:
    return process.start([sys.executable, "-c", code])


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[[str], ManagedProcess]]:
    made: list[ManagedProcess] = []

    def make(name: str) -> ManagedProcess:
        made.append(ManagedProcess(name, tmp_path))
        return made[-1]

    yield make
    for process in made:  # whatever a failing test left behind
        process.kill()


def test_stop_waits_for_the_process_and_removes_the_pid_file(processes) -> None:
    sleeper = processes("sleeper")
    pid = start(sleeper, SLEEPER.format(ignore=""))
    logged(sleeper, "ready")

    assert stop_all([sleeper], grace=10.0) == [sleeper]

    assert not alive(pid)
    assert not sleeper.pid_file.exists()
    assert stop_all([sleeper]) == []  # nothing left to stop


def test_sigkill_after_the_grace_period_for_a_process_ignoring_sigterm(processes) -> None:
    stubborn = processes("stubborn")
    pid = start(stubborn, SLEEPER.format(ignore=IGNORE_TERM))
    logged(stubborn, "ready")

    began = time.monotonic()
    assert stubborn.stop(timeout=0.5)

    assert not alive(pid)
    assert 0.5 <= time.monotonic() - began < 5.0


def test_stop_waits_for_every_member_of_the_group_not_only_the_leader(processes) -> None:
    leader = processes("leader")
    code = PARENT.format(child=SLEEPER.format(ignore=IGNORE_TERM), then="time.sleep(60)")
    leader_pid = start(leader, code)
    child_pid = int(logged(leader, "child")[0])
    logged(leader, "ready")  # the child ignores SIGTERM from here on

    assert leader.stop(timeout=0.5)

    assert not alive(leader_pid)
    assert not alive(child_pid), "the SIGTERM-proof child was SIGKILLed with its group"


def test_children_of_a_crashed_leader_are_stopped_too(processes) -> None:
    crashed = processes("crashed")
    code = PARENT.format(child=SLEEPER.format(ignore=""), then="")  # the leader exits
    leader_pid = start(crashed, code)
    child_pid = int(logged(crashed, "child")[0])
    eventually(lambda: not alive(leader_pid), "the leader gone", timeout=10, interval=0.02)

    assert not crashed.is_running()
    assert crashed.group() == leader_pid  # its group lives on in the child

    assert stop_all([crashed], grace=5.0) == [crashed]
    assert not alive(child_pid)


def test_a_stale_pid_file_whose_pid_was_reused_is_not_trusted(processes, tmp_path) -> None:
    stale = processes("stale")
    # Some other live process (here one of our own) now has the recorded pid.
    unrelated = processes("unrelated")
    other_pid = start(unrelated, SLEEPER.format(ignore=""))
    stale.pid_file.parent.mkdir(parents=True, exist_ok=True)
    stale.pid_file.write_text(f"{other_pid} 1")  # started at another time: another process

    assert stale.pid() is None
    assert not stale.is_running()
    assert stop_all([stale], grace=1.0) == []
    assert alive(other_pid), "an unrelated process is never signalled"
    assert not stale.pid_file.exists()


def test_a_pid_file_of_our_process_is_trusted(processes) -> None:
    ours = processes("ours")
    pid = start(ours, SLEEPER.format(ignore=""))

    assert ours.pid() == pid
    assert start(ours, SLEEPER.format(ignore="")) == pid  # running: not started twice


def test_stop_returns_only_once_the_port_is_free(processes) -> None:
    holder = processes("holder")
    start(holder, PORT_HOLDER)
    port = int(logged(holder, "port")[0])
    assert not port_is_free(port)

    holder.stop(timeout=5.0)
    wait_until_ports_free({port: "holder"}, timeout=5.0)

    assert port_is_free(port)


def test_waiting_for_a_held_port_is_bounded_and_names_it(processes) -> None:
    holder = processes("holder")
    start(holder, PORT_HOLDER)
    port = int(logged(holder, "port")[0])

    began = time.monotonic()
    with pytest.raises(RuntimeError, match=rf"{port} \(webhook_delivery metrics: LISTEN\)"):
        wait_until_ports_free({port: "webhook_delivery metrics"}, timeout=0.3)
    assert time.monotonic() - began < 3.0


def test_connections_a_stopped_server_accepted_do_not_hold_its_port() -> None:
    """Its side of them waits in TIME_WAIT; a SO_REUSEADDR server (all of ours) may bind."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server closes first: TIME_WAIT on the server's port
    server.close()
    client.close()

    assert port_is_free(port)


def test_an_outgoing_connection_in_time_wait_holds_its_ephemeral_port() -> None:
    """Why a metrics port in the ephemeral range can be taken right after another stack's
    `dev down`: its clients' closed connections keep their local ports for 60 s."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    client = socket.create_connection(("127.0.0.1", server.getsockname()[1]))
    local_port = client.getsockname()[1]
    accepted, _ = server.accept()
    client.close()  # the client closes first: TIME_WAIT on its ephemeral port
    accepted.close()
    server.close()

    assert not port_is_free(local_port)
    with pytest.raises(RuntimeError, match="TIME_WAIT"):
        wait_until_ports_free({local_port: "a metrics port"}, timeout=0.2)


def test_a_service_dying_while_starting_shows_the_end_of_its_log(tmp_path: Path) -> None:
    stack = DevStack(StackConfig(state_dir=tmp_path))
    process = stack.service_process("webhook_delivery")
    process.log_file.parent.mkdir(parents=True)
    process.log_file.write_text("an earlier run\n")
    offset = process.log_file.stat().st_size
    lines = "".join(f"print('line {i}', flush=True)\n" for i in range(40))
    start(process, lines + "raise SystemExit('OSError: [Errno 98] Address already in use')")

    with pytest.raises(RuntimeError) as failure:
        stack._wait_until_serving("webhook_delivery", offset, timeout=10.0)

    message = str(failure.value)
    assert "service webhook_delivery exited while starting (exit code 1)" in message
    assert "Address already in use" in message
    assert "line 39" in message and "line 11" in message
    assert "line 10\n" not in message and "an earlier run" not in message


def test_a_service_not_ready_in_time_shows_the_end_of_its_log(processes, tmp_path) -> None:
    stack = DevStack(StackConfig(state_dir=tmp_path))
    process = stack.service_process("router")
    processes("router")  # stopped after the test
    start(process, "import time; print('still connecting', flush=True); time.sleep(60)")
    logged(process, "still")

    with pytest.raises(RuntimeError, match=r"router was not ready in time(.|\n)*still connecting"):
        stack._wait_until_serving("router", 0, timeout=0.3)


def test_a_live_process_is_reported_by_signal_when_killed(processes) -> None:
    victim = processes("victim")
    pid = start(victim, SLEEPER.format(ignore=""))
    logged(victim, "ready")
    os.kill(pid, signal.SIGKILL)

    eventually(lambda: not victim.is_running(), "the victim gone", timeout=10, interval=0.02)
    assert victim.exit_code() == -signal.SIGKILL
