"""Grants that allow claims: `hub grant add --claims` and `addGrant(claims: true)`; the
grant's leaf says so, and `hub ledger verify` checks it."""

import json
import os
import subprocess
import sys
from pathlib import Path

from hub.access.grants import list_grants
from hub.config import Settings
from hub.institutions import add_institution
from hub.ledger.storage import read_leaf_data
from hub.services import Hub
from tests.claims.conftest import INSURER_A
from tests.schema.conftest import World

HUB = [sys.executable, "-m", "hub.cli"]


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HUB, *args], env=env, capture_output=True, text=True, timeout=120)


async def test_hub_grant_add_claims(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env |= {"HUB_DATABASE_URL": f"sqlite://{tmp_path}/hub.db", "HUB_DATA_DIR": str(tmp_path)}
    assert run(env, "keys", "init").returncode == 0
    added = run(env, "institution", "add", "--id", "ins", "--name", "I", "--kind", "agency")
    assert added.returncode == 0, added.stderr
    common = ["--agency", "ins", "--type", "medical_invoice", "--issuers", "*"]
    with_claims = run(
        env, "grant", "add", *common, "--view", "summary", "--purpose", "claims", "--claims"
    )
    assert with_claims.returncode == 0, with_claims.stderr
    without = run(env, "grant", "add", *common, "--view", "summary", "--purpose", "reading")
    assert without.returncode == 0, without.stderr
    assert "--claims" in run(env, "grant", "add", "--help").stdout

    settings = Settings(database_url=env["HUB_DATABASE_URL"], data_dir=tmp_path)
    hub = await Hub.start(settings)
    try:
        grants = {g.id: g for g in await list_grants(hub.db)}
        allowed, read_only = grants[with_claims.stdout.strip()], grants[without.stdout.strip()]
        assert allowed.claims and not read_only.claims
        assert json.loads(await read_leaf_data(hub.db, allowed.leaf_index))["claims"] is True
        assert "claims" not in json.loads(await read_leaf_data(hub.db, read_only.leaf_index))
    finally:
        await hub.stop()
    verified = run(env, "ledger", "verify")
    assert verified.returncode == 0, verified.stderr


async def test_add_grant_claims_over_graphql(claims_world: World) -> None:
    world = claims_world
    await add_institution(world.hub.db, "ins-c", "C", "agency")
    admin = world.token("admin", "ops")
    made = await world.gql(
        'mutation { addGrant(agency: "ins-c", type: "medical_invoice", issuers: ["*"],'
        ' view: SUMMARY, purpose: "claims", claims: true) { id claims } }',
        token=admin,
    )
    assert made["data"]["addGrant"]["claims"] is True
    listed = await world.gql("{ grants { agency claims } }", token=admin)
    assert {(g["agency"], g["claims"]) for g in listed["data"]["grants"]} >= {
        ("ins-c", True),
        (INSURER_A, True),
        ("ag-read", False),
    }
