"""A throwaway PostgreSQL cluster for Label Studio in the tests and benchmarks: Debian's server (`make postgres`),
its own data directory and free port on 127.0.0.1, run as an unprivileged user, stopped and removed at exit.

PostgreSQL refuses to run as root; when this process is root the cluster runs as `nobody`, which owns its data
directory. Teams run Label Studio on PostgreSQL (SQLite is its demo database), so the queue and the loop are
tested on both.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from backend.dev import processes
from backend.errors import LabelloopError

BIN_GLOB = "/usr/lib/postgresql/*/bin"
USER = "labelstudio"  # the database role Label Studio logs in as (trust authentication: loopback only)
DATABASE = "labelstudio"
MISSING_REASON = "PostgreSQL's server is not installed: make postgres (apt-get install postgresql)"


class PostgresError(LabelloopError, RuntimeError):
    """The cluster cannot be started; the message says why, with the server's log where useful."""

    http_status = 500


def bin_dir() -> Path | None:
    """Where Debian's PostgreSQL server binaries are (the newest version), or None."""
    found = sorted(
        Path("/").glob(BIN_GLOB.lstrip("/")), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0
    )
    return found[-1] if found and (found[-1] / "initdb").exists() else None


def available() -> bool:
    return bin_dir() is not None


@dataclass(frozen=True)
class Connection:
    host: str
    port: int
    user: str
    database: str

    def label_studio_env(self) -> dict[str, str]:
        """What Label Studio 1.23.2 reads to use this database instead of SQLite."""
        return {
            "DJANGO_DB": "default",
            "POSTGRE_NAME": self.database,
            "POSTGRE_USER": self.user,
            "POSTGRE_PASSWORD": "",
            "POSTGRE_HOST": self.host,
            "POSTGRE_PORT": str(self.port),
        }


class PostgresCluster:
    """`with PostgresCluster() as pg:` a cluster in a new temporary directory (removed at exit) on a free port, with
    an empty `labelstudio` database."""

    def __init__(self, port: int | None = None):
        # Its own directory under the system's: a test's temporary directory is private to root, where `nobody`
        # could not reach a cluster.
        self.root = Path(tempfile.mkdtemp(prefix="labelloop-pg-"))
        self.data_dir = self.root / "cluster"
        self.port = port or processes.free_port()
        self.log_path = self.root / "postgres.log"
        self.bin = bin_dir()
        self.connection = Connection("127.0.0.1", self.port, USER, DATABASE)
        self._as: list[str] = []

    def _run(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [*self._as, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
            env={**os.environ, "LC_ALL": "C.UTF-8"},
        )
        if done.returncode:
            raise PostgresError(
                f"{Path(args[0]).name} failed: {(done.stderr or done.stdout).strip()[-500:]}"
                + (f"\n{self.log_tail()}" if self.log_path.exists() else "")
            )
        return done.stdout

    def start(self, timeout: float = 60) -> None:
        if self.bin is None:
            raise PostgresError(MISSING_REASON)
        if os.geteuid() == 0:  # the server refuses root: the cluster is nobody's
            nobody = pwd.getpwnam("nobody")
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
            self.root.chmod(0o755)
            self._as = ["runuser", "-u", "nobody", "--"]
        bin_ = self.bin
        self._run(str(bin_ / "initdb"), "-D", str(self.data_dir), "-A", "trust", "-U", USER, "-E", "UTF8")
        self._run(
            str(bin_ / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_path),
            "-w",
            "-t",
            str(int(timeout)),
            "-o",
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1",
            "start",
            timeout=timeout + 10,
        )
        self._run(str(bin_ / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, DATABASE)

    def stop(self) -> None:
        if self.bin is not None and (self.data_dir / "postmaster.pid").exists():
            try:
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
            except (PostgresError, subprocess.TimeoutExpired):
                pass  # a cluster that will not stop is removed with its directory below anyway
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def __enter__(self) -> "PostgresCluster":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
