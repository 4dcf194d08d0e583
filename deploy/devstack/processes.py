"""Detached local processes with a pid file and a log file: the dev stack's process model.

Every process the dev stack starts (the Kafka broker, each service) runs in its own
session, writes to ``<state>/logs/<name>.log`` and leaves ``<state>/run/<name>.pid``,
so ``brug dev status`` and ``brug dev down`` work from a fresh shell.

A pid file holds the pid and the process's start time (``/proc/<pid>/stat``): a pid is
reused once its process is gone, and without the start time a stale pid file would
make an unrelated process look like the service (not started again, and signalled by
``brug dev down``). Stopping waits for the whole process group, not only its leader,
since any member may still hold the service's ports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# After SIGKILL a process is gone within milliseconds unless stuck in the kernel.
KILL_WAIT_SECONDS = 5.0
# How much of a log ``log_tail`` reads from its end: plenty for 30 lines.
_TAIL_BYTES = 64 * 1024
# Exit codes of the children this process reaped (waitpid), for error messages.
_exit_codes: dict[int, int] = {}
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ManagedProcess:
    name: str
    state_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        """The recorded pid if that very process is still alive, else None."""
        recorded = self._recorded()
        if recorded is None:
            return None
        pid, started = recorded
        return pid if _is_alive(pid) and _same_process(pid, started) else None

    def is_running(self) -> bool:
        return self.pid() is not None

    def group(self) -> int | None:
        """The process group this pid file stands for while any member of it lives.

        Also when the leader is gone but a child of it lives on (Linux does not reuse a
        pid while it names a live group, so that group is still ours); None when the
        recorded pid now belongs to another process."""
        recorded = self._recorded()
        if recorded is None:
            return None
        pid, started = recorded
        if _is_alive(pid):
            return pid if _same_process(pid, started) else None
        return pid if _group_alive(pid) else None

    def exit_code(self) -> int | None:
        """How the recorded process ended (negative: by that signal), if we reaped it."""
        recorded = self._recorded()
        if recorded is None:
            return None
        # It may have been seen as a zombie (so "not running") before anyone reaped it.
        _reap(recorded[0])
        return _exit_codes.get(recorded[0])

    def start(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> int:
        """Start ``argv`` detached unless it already runs; return its pid."""
        if (pid := self.pid()) is not None:
            return pid
        # Leftovers of a crashed leader (its children) may hold the ports the new one needs.
        stop_all([self])
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            # A new session, so a Ctrl-C in the terminal that ran `brug dev up`
            # does not take the stack down with it.
            process = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        # Kept, not dropped: a dropped Popen of a live child is reaped by the subprocess
        # module the next time anything starts a process, and its exit status lost.
        _children[process.pid] = process
        started = _start_time(process.pid)
        self.pid_file.write_text(f"{process.pid} {started if started is not None else ''}")
        return process.pid

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGTERM the process group, SIGKILL it after ``timeout``; True if one was running."""
        return bool(stop_all([self], grace=timeout))

    def kill(self) -> None:
        """SIGKILL, leaving the pid file behind: what a crash looks like (used by tests)."""
        pgid = self.group()
        if pgid is not None:
            _signal_group(pgid, signal.SIGKILL)
            _wait_until(lambda: not _group_alive(pgid), KILL_WAIT_SECONDS)

    def log_tail(self, lines: int = 30, since: int = 0) -> str:
        """The last ``lines`` lines of the log written after byte offset ``since``."""
        try:
            with self.log_file.open("rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(since, size - _TAIL_BYTES))
                text = log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _recorded(self) -> tuple[int, int | None] | None:
        """(pid, start time) from the pid file; an older pid file has no start time."""
        try:
            fields = self.pid_file.read_text().split()
            return int(fields[0]), int(fields[1]) if len(fields) > 1 else None
        except (FileNotFoundError, ValueError, IndexError):
            return None


def stop_all(processes: Iterable[ManagedProcess], grace: float = 20.0) -> list[ManagedProcess]:
    """Stop the processes at once and return those that were running, once they are gone.

    SIGTERM to every process group, SIGKILL to the groups still there after ``grace``;
    raises if a group outlives SIGKILL. Pid files are removed only once their group is
    gone, so a failed stop can be retried."""
    given = list(processes)
    groups = {process: pgid for process in given if (pgid := process.group()) is not None}
    for pgid in groups.values():
        _signal_group(pgid, signal.SIGTERM)

    def all_gone() -> bool:
        return not any(_group_alive(pgid) for pgid in groups.values())

    if not _wait_until(all_gone, grace):
        for pgid in groups.values():
            _signal_group(pgid, signal.SIGKILL)
        if not _wait_until(all_gone, KILL_WAIT_SECONDS):
            alive = [p.name for p, pgid in groups.items() if _group_alive(pgid)]
            raise RuntimeError(f"still running after SIGKILL: {', '.join(alive)}")
    for process in given:
        process.pid_file.unlink(missing_ok=True)
    return list(groups)


def port_is_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:``port`` now.

    The probe sets SO_REUSEADDR as every server of the stack does (uvicorn,
    prometheus_client, Kafka's JVM, PostgreSQL): then the TIME_WAIT connections a
    stopped server had accepted do not count, but a listener still bound does, and so
    does a TIME_WAIT of an *outgoing* connection that used the port as its ephemeral
    local port (Linux keeps those 60 s and they block even a SO_REUSEADDR bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen(1)
        except OSError:
            return False
    return True


def wait_until_ports_free(ports: Mapping[int, str], timeout: float) -> None:
    """Return once every port (number -> what it is for) is free; raise naming the busy ones."""
    if _wait_until(lambda: all(port_is_free(port) for port in ports), timeout):
        return
    busy = [
        f"{port} ({what}: {_port_holders(port)})"
        for port, what in ports.items()
        if not port_is_free(port)
    ]
    raise RuntimeError(f"ports still in use after {timeout:.0f}s: {'; '.join(busy)}")


def accepts_connections(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port`` (loopback only)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Close with a reset: a probe's own TIME_WAIT would occupy an ephemeral port,
        # which may be the very port (a metrics port) another service binds next.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) == 0


_TCP_STATES = {"01": "ESTABLISHED", "06": "TIME_WAIT", "08": "CLOSE_WAIT", "0A": "LISTEN"}


def _port_holders(port: int) -> str:
    """The TCP states of the sockets on local ``port`` (from /proc/net/tcp), for errors."""
    states: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    states.add(_TCP_STATES.get(fields[3], fields[3]))
    return ", ".join(sorted(states)) or "held by an unknown socket"


def _wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pgid, signum)


def _reap(pid: int) -> None:
    """Collect our own exited child, so its zombie does not count as alive."""
    if (child := _children.get(pid)) is not None:
        if (code := child.poll()) is not None:
            _exit_codes[pid] = code
            del _children[pid]
        return
    with contextlib.suppress(ChildProcessError):
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            _exit_codes[pid] = os.waitstatus_to_exitcode(status)


def _is_alive(pid: int) -> bool:
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _proc_stat(pid)[:1] != ["Z"]


def _group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still runs (zombies do not)."""
    _reap(pgid)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    members = [stat for entry in Path("/proc").glob("[0-9]*") if (stat := _proc_stat(entry.name))]
    in_group = [stat for stat in members if len(stat) > 2 and stat[2] == str(pgid)]
    # Without /proc there is nothing to tell a zombie by: trust killpg.
    return not members or any(stat[0] != "Z" for stat in in_group)


def _proc_stat(pid: int | str) -> list[str]:
    """/proc/<pid>/stat after the command name: [state, ppid, pgrp, ...]; [] if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return stat.rsplit(")", 1)[-1].split()


def _start_time(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    stat = _proc_stat(pid)
    return int(stat[19]) if len(stat) > 19 else None


def _same_process(pid: int, started: int | None) -> bool:
    """Whether ``pid`` is still the process that started at ``started`` (unknown: yes)."""
    if started is None:
        return True
    now = _start_time(pid)
    return now is None or now == started
