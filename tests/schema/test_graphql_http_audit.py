"""The graphql-http audit (the GraphQL-over-HTTP spec's own conformance checks), run
offline from its npm package against a real server: no warning, no error.

The package is installed once into a cache directory this test manages
(``$HUB_TEST_CACHE`` or ~/.cache/ledger-hub-tests); node and npm come from Debian
(`apt-get install nodejs npm`, as .ci/run does). Without them the test is skipped,
except under CI, where it fails.
"""

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hub.app import create_app
from tests.schema.conftest import World
from tests.schema.live import serving

PACKAGE = "graphql-http@1.22"
SCRIPT = Path(__file__).parent / "audit" / "run_audit.mjs"


def _package_dir() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node and npm are needed for the graphql-http audit (apt nodejs npm)")
        pytest.skip("node/npm not installed")
    cache = Path(os.environ.get("HUB_TEST_CACHE") or Path.home() / ".cache" / "ledger-hub-tests")
    prefix = cache / "graphql-http"
    installed = prefix / "node_modules" / "graphql-http" / "package.json"
    if not installed.exists():
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix), PACKAGE],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return prefix / "node_modules"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_the_graphql_http_audit_finds_nothing(world: World) -> None:
    modules = _package_dir()
    async with serving(create_app(hub=world.hub)) as url:
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(SCRIPT),
            url + "/graphql",
            env={**os.environ, "GRAPHQL_HTTP_DIR": str(modules)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    results = json.loads(out)
    assert len(results) > 30
    problems = [r for r in results if r["status"] != "ok"]
    assert problems == [], json.dumps(problems, indent=1, ensure_ascii=False)
