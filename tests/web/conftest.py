"""A real hub server (`hub serve --demo` on port 0) and Debian's Chromium via Playwright.

Browser tests skip locally with a reason when Playwright or Chromium is missing, and fail
when CI=true: CI installs both, so a missing one there is a broken setup, not a skip.
"""

import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.cli import issue_token
from hub.config import Settings
from hub.demo import AGENCIES
from hub.documents.demo_data import DEMO_HOSPITALS, demo_invoices
from hub.keys import load_log_signer
from hub.ledger.note import Signer
from tests.serving import ServerProcess

IN_CI = os.environ.get("CI") == "true"
CHROMIUM = Path(os.environ.get("HUB_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
STARTUP_TIMEOUT = 30.0


def require(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


@dataclass
class LiveHub:
    """A `hub serve --demo` process and what a test needs to drive it."""

    url: str
    settings: Settings
    invoice: dict[str, Any]  # the first demo invoice (its hospital is `hospital`)
    hospital: str
    signer: Signer
    agency: str = AGENCIES[0][0]  # has a full-view grant in the demo
    _tokens: dict[str, str] = field(default_factory=dict)

    def token(self, role: str, sub: str, inst: str | None) -> str:
        key = f"{role}/{sub}/{inst}"
        if key not in self._tokens:
            self._tokens[key] = issue_token(self.settings, role, sub, inst, 3600)
        return self._tokens[key]

    def graphql(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = httpx.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": variables or {}},
            headers=headers,
            timeout=30,
        )
        r.raise_for_status()
        payload: dict[str, Any] = r.json()
        assert not payload.get("errors"), payload["errors"]
        return payload["data"]

    def codes(self, invoice: dict[str, Any] | None = None) -> dict[str, str]:
        inv = invoice or self.invoice
        return {"code": inv["billCode"], "number": inv["billNumber"], "check": inv["checkCode"]}

    def page_url(self, codes: dict[str, str] | None = None, path: str = "/verify") -> str:
        c = codes or self.codes()
        return f"{self.url}{path}?code={c['code']}&number={c['number']}&check={c['check']}"

    def grow(self, count: int = 3) -> int:
        """Anchor `count` new invoices; the new tree size."""
        docs = []
        for _ in range(count):
            body = {**self.invoice, "billNumber": f"{secrets.randbelow(10**10):010d}"}
            docs.append(
                {
                    "type": "medical_invoice",
                    "id": f"{body['billCode']}-{body['billNumber']}",
                    "body": body,
                }
            )
        data = self.graphql(
            "mutation($d: [DocumentInput!]!) { submitDocuments(documents: $d) {"
            " results { status } checkpoint { treeSize } } }",
            {"d": docs},
            self.token("hospital", f"his@{self.hospital}", self.hospital),
        )
        assert {r["status"] for r in data["submitDocuments"]["results"]} == {"CREATED"}
        return int(data["submitDocuments"]["checkpoint"]["treeSize"])

    def agency_reads(self, invoice: dict[str, Any] | None = None) -> None:
        """The demo agency reads the invoice's body: an `access` leaf."""
        inv = invoice or self.invoice
        self.graphql(
            "query($id: ID!) { document(id: $id) { body } }",
            {"id": f"{inv['billCode']}-{inv['billNumber']}"},
            self.token("agency", f"analyst@{self.agency}", self.agency),
        )


@pytest.fixture(scope="session")
def live_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    data = tmp_path_factory.mktemp("hub")
    env = {
        **os.environ,
        "HUB_DATA_DIR": str(data),
        "HUB_DATABASE_URL": f"sqlite://{data}/hub.db",
        "HUB_ENV": "dev",
    }
    for name in ("HUB_LOG_KEY_FILE", "HUB_JWT_KEY_FILE", "HUB_JWKS_URL", "HUB_ORIGIN"):
        env.pop(name, None)
    server = ServerProcess(env, "--demo", cwd=data)
    try:
        url = server.wait_ready(STARTUP_TIMEOUT)
        settings = Settings.from_env(env)
        first = demo_invoices(1, seed=0)[0]
        hospital = {h.bill_code: h.id for h in DEMO_HOSPITALS}[first["billCode"]]
        yield LiveHub(
            url=url,
            settings=settings,
            invoice=first,
            hospital=hospital,
            signer=load_log_signer(settings.log_key_path),
        )
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require("playwright is not installed: pip install -e '.[test]'")
    if not CHROMIUM.exists():
        require(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@dataclass
class Visit:
    """A browser context (its own local storage) whose every request is recorded."""

    context: Any
    page: Any
    requests: list[str]


@pytest.fixture
def visit(browser: Any, live_hub: LiveHub) -> Iterator[Visit]:
    context = browser.new_context(
        viewport={"width": 360, "height": 800}, accept_downloads=True, locale="zh-CN"
    )
    context.set_default_timeout(15_000)
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # A CSP violation or a failed asset load shows up as a console error.
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        yield Visit(context, page, requests)
    finally:
        context.close()
    # No request may leave the hub's own origin (blob: URLs are the page's downloads).
    strays = [u for u in requests if not u.startswith((f"{live_hub.url}/", "blob:"))]
    assert not strays, f"requests left {live_hub.url}: {strays}"
    assert not errors, f"page errors: {errors}"
