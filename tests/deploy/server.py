"""A deployment (database, keys) for the deployment tests to run `hub serve` processes on.

The servers are tests.serving.ServerProcess: port 0, ready when their log says so.
"""

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from hub.auth.tokens import load_or_create_jwt_key
from hub.cli import issue_token
from hub.config import Settings
from hub.documents.demo_data import DEMO_HOSPITALS
from hub.institutions import add_institution
from hub.keys import create_log_key, load_log_signer
from hub.ledger.note import Verifier
from hub.services import Hub
from hub.store.db import migrate
from tests.serving import ServerProcess

ORIGIN = "test.example/log"
DEMO_HOSPITAL_IDS = tuple(h.id for h in DEMO_HOSPITALS)

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

    def serve(self) -> ServerProcess:
        return ServerProcess(self.env)


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
