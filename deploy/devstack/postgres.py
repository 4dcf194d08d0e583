"""A project-owned PostgreSQL cluster: Debian's binaries, our own data folder and port.

The cluster never touches the system's default one (``/var/lib/postgresql``, port
5432): it lives in ``<state>/postgres`` and listens on loopback only. PostgreSQL
refuses to run as root, so as root the server runs as the ``postgres`` system user
that Debian's package creates.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from deploy.devstack.processes import wait_until_ports_free

DEV_USER = "brug"
DEV_PASSWORD = "brug"  # noqa: S105 - loopback-only development cluster, documented in the README
DEV_DATABASE = "brug"
# pg_ctl -w returns once the postmaster has exited: its port frees at once in practice.
PORTS_FREE_AFTER_STOP_SECONDS = 10.0


def postgres_bin_dir() -> Path:
    """The newest installed PostgreSQL's bin folder, installing Debian's package if needed."""
    found = _installed_bin_dirs()
    if not found:
        _install_debian_postgresql()
        found = _installed_bin_dirs()
    if not found:
        raise RuntimeError("PostgreSQL is not installed and could not be installed")
    return found[-1]


def _installed_bin_dirs() -> list[Path]:
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    return sorted((Path(c).parent for c in candidates), key=lambda p: int(p.parent.name))


def _install_debian_postgresql() -> None:
    if shutil.which("apt-get") is None:
        raise RuntimeError("PostgreSQL is missing; install it or set BRUG_DATABASE_URL")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", "postgresql"],
        check=True,
        env=env,
    )


@dataclass(frozen=True)
class PostgresCluster:
    state_dir: Path
    port: int

    @property
    def home(self) -> Path:
        return self.state_dir / "postgres"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / "postgres.log"

    @property
    def url(self) -> str:
        return (
            f"postgresql+psycopg://{DEV_USER}:{DEV_PASSWORD}@127.0.0.1:{self.port}/{DEV_DATABASE}"
        )

    def start(self) -> None:
        """Create the cluster on first use, start it and make sure the database exists."""
        bin_dir = postgres_bin_dir()
        self._prepare_folders()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(bin_dir)
        if not self.is_running():
            self._pg_ctl(
                bin_dir,
                "start",
                "-w",
                "-t",
                "60",
                "-l",
                str(self.log_file),
                "-o",
                (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.home / 'run'}"),
            )
        self._ensure_database(bin_dir)

    def stop(self) -> bool:
        """Stop the server; return (True if it ran) once it has exited and its port is free."""
        if not self.is_running():
            return False
        bin_dir = postgres_bin_dir()
        # "fast" rolls back open sessions and shuts down cleanly. Should that not finish,
        # "immediate" (crash recovery at the next start) rather than return with the
        # postmaster still bound to the port.
        fast = self._pg_ctl(bin_dir, "stop", "-m", "fast", "-w", "-t", "30", check=False)
        if fast.returncode != 0 and self.is_running():
            self._pg_ctl(bin_dir, "stop", "-m", "immediate", "-w", "-t", "30")
        wait_until_ports_free({self.port: "PostgreSQL"}, PORTS_FREE_AFTER_STOP_SECONDS)
        return True

    def is_running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        result = self._pg_ctl(postgres_bin_dir(), "status", check=False)
        return result.returncode == 0

    def _prepare_folders(self) -> None:
        for folder in (self.home, self.data_dir, self.home / "run", self.log_file.parent):
            folder.mkdir(parents=True, exist_ok=True)
        self.log_file.touch(exist_ok=True)
        if os.geteuid() == 0:
            # Every folder above the data must be enterable by the postgres user.
            for parent in [self.state_dir, *self.state_dir.parents]:
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    parent.chmod(mode | 0o001)
            subprocess.run(
                ["chown", "-R", "postgres:postgres", str(self.home), str(self.log_file)],
                check=True,
            )
        self.data_dir.chmod(0o700)

    def _initdb(self, bin_dir: Path) -> None:
        password_file = self.home / "initdb-password"
        password_file.write_text(DEV_PASSWORD)
        if os.geteuid() == 0:
            shutil.chown(password_file, "postgres", "postgres")
        try:
            self._run_as_owner(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    DEV_USER,
                    f"--pwfile={password_file}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ]
            )
        finally:
            password_file.unlink(missing_ok=True)

    def _ensure_database(self, bin_dir: Path) -> None:
        query = f"SELECT 1 FROM pg_database WHERE datname = '{DEV_DATABASE}'"  # noqa: S608
        found = self._client(bin_dir, "psql", "-d", "postgres", "-tAc", query)
        if found.stdout.strip() != "1":
            self._client(bin_dir, "createdb", DEV_DATABASE)

    def _client(self, bin_dir: Path, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL client tool against this cluster over its private socket."""
        connection = ["-h", str(self.home / "run"), "-p", str(self.port), "-U", DEV_USER]
        return self._run_as_owner([str(bin_dir / tool), *connection, *args])

    def _pg_ctl(
        self, bin_dir: Path, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self._run_as_owner(
            [str(bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args], check=check
        )

    @staticmethod
    def _run_as_owner(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, cwd="/")
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stdout}{result.stderr}")
        return result
