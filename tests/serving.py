"""`hub serve --port 0` in a child process, for every test that needs a real server.

The server's "Uvicorn running on http://host:port" log line says which port it got, so no
port is guessed beforehand (and raced for), and no test sleeps while a server starts.
"""

import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

import httpx

START_TIMEOUT = 30.0
_LISTENING = re.compile(r"Uvicorn running on (http://[0-9.]+:[0-9]+)")


class ServerProcess:
    """`hub serve --host 127.0.0.1 --port PORT [ARGS]`; its output is collected line by line.

    PORT is 0 unless given: a restart that must keep its URL passes the port it had.
    """

    def __init__(
        self, env: dict[str, str], *args: str, port: int = 0, cwd: Path | None = None
    ) -> None:
        command = [sys.executable, "-m", "hub.cli", "serve", "--host", "127.0.0.1"]
        self.proc = subprocess.Popen(
            [*command, "--port", str(port), *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.url = ""
        self._listening = threading.Event()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def _read(self, stream: IO[str], into: list[str]) -> None:
        for line in stream:
            into.append(line)
            found = _LISTENING.search(line)
            if found and not self.url:
                self.url = found.group(1)
                self._listening.set()
        self._listening.set()  # the process ended: wake a waiter to report it

    def wait_ready(self, timeout: float = START_TIMEOUT) -> str:
        """Wait for the listening line, then ask /readyz until the app answers 200."""
        if not self._listening.wait(timeout) or not self.url:
            raise AssertionError(f"hub serve did not start:\n{self.output()}")
        with httpx.Client(base_url=self.url, timeout=5.0) as client:
            for _ in range(100):
                if client.get("/readyz").status_code == 200:
                    return self.url
        raise AssertionError(f"/readyz never answered 200:\n{self.output()}")

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for reader in self._readers:
            reader.join(10)

    def output(self) -> str:
        return "".join(self.stdout) + "".join(self.stderr)
