"""A throwaway PostgreSQL cluster of the tests' own, to stop and restart for real.

The machine's shared server (HUB_TEST_POSTGRES_URL) serves every other test and must never
be stopped: these tests run `initdb` into a temporary directory and `pg_ctl` a server of
their own on a free port, and stop it at the end.
"""

import os
import shutil
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

PG_BIN_ROOT = Path("/usr/lib/postgresql")
TIMEOUT = 60


def pg_bin() -> Path | None:
    """The newest installed server's bin directory, or None."""
    found = sorted(PG_BIN_ROOT.glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """initdb + pg_ctl in ``root``; run as the `postgres` user when we are root."""

    def __init__(self, root: Path, bin_dir: Path) -> None:
        self.root = root
        self.bin = bin_dir
        self.data = root / "data"
        self.port = _free_port()
        self.log = root / "server.log"
        self._as_postgres = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, argv: Sequence[str]) -> None:
        command = list(argv)
        if self._as_postgres:  # the server refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stdout}{done.stderr}")

    def init(self, *initdb_options: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                   "-A", "trust", "--no-sync", *initdb_options])  # fmt: skip

    def start(self, *settings: str) -> None:
        """Start the server; ``settings`` are extra `name=value` server settings."""
        extra = "".join(f" -c {setting}" for setting in settings)
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        options += extra
        # `-w` waits until the server accepts connections: no polling here.
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                   "-o", options, "-w", "-t", str(TIMEOUT), "start"])  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                   "-t", str(TIMEOUT), "stop"])  # fmt: skip

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()
