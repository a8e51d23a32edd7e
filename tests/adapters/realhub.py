"""A real hub for the adapter tests: `hub serve` in a subprocess, set up with the CLI.

RealHub.create runs `hub keys init`, registers one hospital with its Ed25519 key and
`--signatures-required`, and issues it a token, all as an operator would (the CLI's own
`main`, in this process: tests/test_cli.py runs the console script itself, and a Python
process start would cost each test more than the commands do). start() serves
(first on port 0, then on the port it got, so a restart keeps the adapter's URL) and
returns once /readyz answers; kill() is SIGKILL. Reads go through the public contract:
GraphQL as the hospital and GET /log/checkpoint.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from adapters.signing import DocumentSigner
from hub.cli import main
from tests.serving import ServerProcess

_SCRIPT = Path(sys.executable).with_name("hub")
HUB = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "hub.cli"]
HOSPITAL = "hosp-real"

DOCUMENTS = """
query($after: String) {
  documents(first: 100, after: $after) {
    edges { node { id version leafIndex } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


class RealHub:
    """One hub (database, keys, data dir) that can be started, killed and started again."""

    def __init__(
        self, env: dict[str, str], workdir: Path, signer: DocumentSigner, token: str
    ) -> None:
        self.env = env
        self.workdir = workdir
        self.signer = signer  # the key registered for HOSPITAL
        self.token = token
        self.port = 0  # until the first start: then the port it got, kept across restarts
        self.server: ServerProcess | None = None
        self._last_output = ""

    @classmethod
    def create(cls, database_url: str, workdir: Path, **env: str) -> RealHub:
        base = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        full = {
            **base,
            "HUB_DATABASE_URL": database_url,
            "HUB_DATA_DIR": str(workdir),
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        signer = DocumentSigner.generate()
        public = workdir / "hospital.pub.pem"
        public.write_bytes(signer.public_key_pem())
        run(full, "keys", "init")
        run(
            full,
            *("institution", "add", "--id", HOSPITAL, "--name", "Real Hospital"),
            *("--kind", "hospital", "--key", str(public), "--signatures-required"),
        )
        token = run(
            full, "token", "issue", "--role", "hospital", "--sub", "his", "--inst", HOSPITAL
        )
        return cls(full, workdir, signer, token.strip())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        assert self.server is None, "already running"
        self.server = ServerProcess(self.env, port=self.port)
        try:
            self.server.wait_ready(timeout)
        except AssertionError:
            self.kill()
            raise
        self.port = self.server.port

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, whatever was in flight."""
        if self.server is not None:
            self.server.kill()
            self._last_output = self.server.output()
            self.server = None

    def log(self) -> str:
        """The running (else the last) server's output, its tail."""
        output = self.server.output() if self.server is not None else self._last_output
        return output[-2000:]

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        answer: dict[str, Any] = response.json()
        assert not answer.get("errors"), answer["errors"]
        return answer["data"]

    def anchored(self) -> dict[str, list[tuple[int, int]]]:
        """Every document of the hospital: id -> [(version, leaf index)]."""
        found: dict[str, list[tuple[int, int]]] = {}
        after = None
        while True:
            page = self.graphql(DOCUMENTS, {"after": after})["documents"]
            for edge in page["edges"]:
                node = edge["node"]
                found.setdefault(node["id"], []).append((node["version"], node["leafIndex"]))
            if not page["pageInfo"]["hasNextPage"]:
                return found
            after = page["pageInfo"]["endCursor"]

    def wait_for_size(self, size: int, timeout: float = 30.0) -> None:
        """Block until the log holds `size` leaves: the `checkpoints` subscription's word
        (a real websocket), not a polling loop."""
        url = self.url.replace("http://", "ws://") + "/graphql"
        with connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
            init = {"Authorization": f"Bearer {self.token}"}
            ws.send(json.dumps({"type": "connection_init", "payload": init}))
            subscribe = {"query": "subscription { checkpoints { treeSize } }"}
            ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the log did not reach {size} leaves in {timeout} s")
                message = json.loads(ws.recv(timeout=left))
                if message["type"] in ("connection_ack", "ping", "pong"):
                    continue
                assert message["type"] == "next", message
                if message["payload"]["data"]["checkpoints"]["treeSize"] >= size:
                    return

    def tree_size(self) -> int:
        note = httpx.get(f"{self.url}/log/checkpoint", timeout=10).text
        return int(note.splitlines()[1])

    def close(self) -> None:
        self.kill()


def run(env: dict[str, str], *args: str) -> str:
    """`hub <args>` with `env` as the whole environment; its standard output."""
    out, err = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = main(list(args))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if code != 0:
        raise AssertionError(f"hub {' '.join(args)}: exit {code}: {err.getvalue().strip()}")
    return out.getvalue()
