"""Real `hub serve` processes for the deployment tests, and a deployment to run them on.

A server listens on port 0; its "Uvicorn running on http://host:port" log line says which
port it got, so no port is guessed and no test sleeps while a server starts.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from hub.auth.tokens import load_or_create_jwt_key
from hub.cli import issue_token
from hub.config import Settings
from hub.db import migrate
from hub.documents.demo_data import DEMO_HOSPITALS
from hub.institutions import add_institution
from hub.keys import create_log_key, load_log_signer
from hub.ledger.note import Verifier
from hub.services import Hub

ORIGIN = "test.example/log"
DEMO_HOSPITAL_IDS = tuple(h.id for h in DEMO_HOSPITALS)
START_TIMEOUT = 30.0
_LISTENING = re.compile(r"Uvicorn running on (http://[0-9.]+:[0-9]+)")

SUBMIT = (
    "mutation($d: [DocumentInput!]!) { submitDocuments(documents: $d) {"
    " results { id status leafIndex leafHash error { code message } }"
    " checkpoint { treeSize rootHash note } } }"
)


@dataclass
class Deployment:
    """One database, one log key and one JWT key, shared by every server started on it."""

    database_url: str
    root: Path
    log_key: Path = field(init=False)
    jwt_key: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_key = self.root / "log.key"
        self.jwt_key = self.root / "jwt.pem"

    @property
    def settings(self) -> Settings:
        return Settings(
            database_url=self.database_url,
            data_dir=self.root / "var",
            origin=ORIGIN,
            log_key_file=self.log_key,
            jwt_key_file=self.jwt_key,
        )

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HUB_DATABASE_URL": self.database_url,
            "HUB_DATA_DIR": str(self.root / "var"),
            "HUB_ORIGIN": ORIGIN,
            "HUB_LOG_KEY_FILE": str(self.log_key),
            "HUB_JWT_KEY_FILE": str(self.jwt_key),
            "HUB_ENV": "dev",
        }

    @property
    def verifier(self) -> Verifier:
        return load_log_signer(self.log_key).verifier

    async def prepare(self, hospitals: Iterable[str] = DEMO_HOSPITAL_IDS) -> None:
        """Keys, the schema (`hub migrate` runs once, before any server) and hospitals."""
        create_log_key(self.log_key, ORIGIN)
        load_or_create_jwt_key(self.jwt_key)
        await migrate(self.database_url)
        hub = await Hub.start(self.settings, run_migrations=False)
        try:
            for inst in hospitals:
                await add_institution(hub.db, inst, f"Hospital {inst}", "hospital")
        finally:
            await hub.stop()

    def token(self, inst: str) -> str:
        return issue_token(self.settings, "hospital", f"his@{inst}", inst, 3600)

    def cli_argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "hub.cli", *args]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.cli_argv(*args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def serve(self) -> "ServerProcess":
        return ServerProcess(self.env)


class ServerProcess:
    """`hub serve --port 0` in a child process; its output is collected line by line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "serve", "--host", "127.0.0.1", "--port", "0"],
            env=env,
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

    def _read(self, stream: IO[str], into: list[str]) -> None:
        for line in stream:
            into.append(line)
            found = _LISTENING.search(line)
            if found and not self.url:
                self.url = found.group(1)
                self._listening.set()
        self._listening.set()  # the process ended: wake a waiter to report it

    def wait_ready(self) -> str:
        """Wait for the listening line, then poll /readyz until the app answers 200."""
        if not self._listening.wait(START_TIMEOUT) or not self.url:
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

    def output(self) -> str:
        return "".join(self.stdout) + "".join(self.stderr)


def hospital_of(invoice: dict[str, Any]) -> str:
    """The demo hospital that issued a demo invoice (by its bill code)."""
    return next(h.id for h in DEMO_HOSPITALS if h.bill_code == invoice["billCode"])


def document_of(invoice: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "medical_invoice",
        "id": f"{invoice['billCode']}-{invoice['billNumber']}",
        "body": invoice,
    }


async def submit(
    client: httpx.AsyncClient, url: str, token: str, invoices: list[dict[str, Any]]
) -> dict[str, Any]:
    """POST one submitDocuments; the payload, or AssertionError on any other answer."""
    response = await client.post(
        f"{url}/graphql",
        json={"query": SUBMIT, "variables": {"d": [document_of(i) for i in invoices]}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert "errors" not in answer, json.dumps(answer)[:500]
    payload: dict[str, Any] = answer["data"]["submitDocuments"]
    return payload
