"""Real `hub witness serve`, `hub serve` and `hub monitor` processes for the witness tests.

Every wait is on an event a process reports: its listening line, a structured log line
(``witness cosigned`` with the size), or its exit; nothing sleeps to let time pass.
"""

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.deploy.server import Deployment

TIMEOUT = 60.0
_LISTENING = re.compile(r"Uvicorn running on (http://[0-9.]+:([0-9]+))")


class Proc:
    """A child process whose output lines are kept, and can be waited for."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self.stdout: list[str] = []
        self._changed = threading.Condition()
        self._open = 2
        assert self.proc.stdout is not None and self.proc.stderr is not None
        for stream, into in ((self.proc.stdout, self.stdout), (self.proc.stderr, None)):
            threading.Thread(target=self._read, args=(stream, into), daemon=True).start()

    def _read(self, stream: IO[str], into: list[str] | None) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line)
                if into is not None:
                    into.append(line)
                self._changed.notify_all()
        with self._changed:
            self._open -= 1
            self._changed.notify_all()

    def wait_for(self, matches: Callable[[str], bool], what: str, since: int = 0) -> str:
        """The first line from ``since`` on that ``matches``; AssertionError if the process
        ends (or TIMEOUT passes) first."""
        with self._changed:
            seen = since
            while True:
                for line in self.lines[seen:]:
                    if matches(line):
                        return line
                seen = len(self.lines)
                if self._open == 0:
                    raise AssertionError(f"process ended before {what}:\n{self.output()}")
                if not self._changed.wait(TIMEOUT):
                    raise AssertionError(f"no {what} in {TIMEOUT} s:\n{self.output()}")

    def mark(self) -> int:
        with self._changed:
            return len(self.lines)

    def url(self) -> str:
        line = self.wait_for(lambda s: bool(_LISTENING.search(s)), "listening line")
        found = _LISTENING.search(line)
        assert found is not None
        return found.group(1)

    def events(self, message: str, since: int = 0) -> list[dict[str, Any]]:
        with self._changed:
            lines = self.lines[since:]
        return [e for e in map(_json, lines) if e and e.get("message") == message]

    def wait_event(self, message: str, what: str, since: int = 0, **fields: Any) -> None:
        def matches(line: str) -> bool:
            entry = _json(line)
            return (
                bool(entry)
                and entry.get("message") == message
                and all(entry.get(k) == v for k, v in fields.items())
            )

        self.wait_for(matches, what, since)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(TIMEOUT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return "".join(self.lines[-60:])


def _json(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def hub_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


class WitnessProcess:
    """One witness: its own data directory (key and state), restartable on its port."""

    def __init__(self, root: Path, name: str, log_vkey: str) -> None:
        self.name, self.log_vkey = name, log_vkey
        self.env = {**os.environ, "HUB_DATA_DIR": str(root)}
        done = hub_cli(self.env, "witness", "init", "--name", name)
        assert done.returncode == 0, done.stderr
        self.vkey = done.stdout.strip()
        self.port = 0
        self.proc: Proc | None = None

    def start(self) -> str:
        self.proc = Proc(
            [
                sys.executable,
                "-m",
                "hub.cli",
                "witness",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log",
                self.log_vkey,
            ],
            self.env,
        )
        url = self.proc.url()
        self.port = int(url.rsplit(":", 1)[1])
        return url

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()


class HubProcess(Proc):
    def __init__(self, deployment: Deployment, policy: Path | None, port: int = 0) -> None:
        env = dict(deployment.env)
        if policy is not None:
            env["HUB_WITNESS_POLICY"] = str(policy)
        super().__init__(
            [sys.executable, "-m", "hub.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env,
        )
        self.base = self.url()
        self.port = int(self.base.rsplit(":", 1)[1])

    def wait_cosigned(self, size: int, count: int, since: int = 0) -> None:
        """Until ``count`` witnesses have cosigned checkpoint ``size`` (per the hub's log)."""

        def enough(_: str) -> bool:
            return (
                len(
                    {
                        e["witness"]
                        for e in self.events("witness cosigned", since)
                        if e.get("size") == size
                    }
                )
                >= count
            )

        self.wait_for(enough, f"{count} cosignatures of size {size}", since)


def write_policy(path: Path, log_vkey: str, witnesses: list[WitnessProcess], k: int) -> Path:
    lines = [f"log {log_vkey}"]
    lines += [f"witness {w.name} {w.vkey} {w.url}" for w in witnesses]
    lines += [
        f"group all-witnesses {k} {' '.join(w.name for w in witnesses)}",
        "quorum all-witnesses",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def own_cosignature_check(note: str, vkeys: list[str]) -> set[str]:
    """The witnesses whose cosignature lines on ``note`` verify, by the spec's bytes alone.

    Written from c2sp.org/tlog-cosignature with hashlib and a bare Ed25519 key, apart
    from the hub's code: message = "cosignature/v1\\ntime <t>\\n" + note text.
    """
    import hashlib

    text = note[: note.rfind("\n\n") + 1]
    keys = {}
    for vkey in vkeys:
        name, id_hex, b64 = vkey.split("+", 2)
        material = base64.b64decode(b64)
        assert material[0] == 0x04
        assert hashlib.sha256(name.encode() + b"\n" + material).digest()[:4].hex() == id_hex
        keys[(name, bytes.fromhex(id_hex))] = Ed25519PublicKey.from_public_bytes(material[1:])
    good = set()
    for line in note[len(text) + 1 :].splitlines():
        name, blob64 = line.removeprefix("— ").split(" ")
        blob = base64.b64decode(blob64)
        key = keys.get((name, blob[:4]))
        if key is None or len(blob) != 76:
            continue
        timestamp = int.from_bytes(blob[4:12], "big")
        message = f"cosignature/v1\ntime {timestamp}\n{text}".encode()
        try:
            key.verify(blob[12:], message)
        except InvalidSignature:
            continue
        good.add(name)
    return good
