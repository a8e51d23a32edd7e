"""Three `hub serve` processes on one PostgreSQL database, many client tasks on each,
claiming the same documents at once: no document's active claims exceed its claimable
amount, every acknowledged claim is stored with its leaf, and the ledger verifies."""

import asyncio
import itertools
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.audit import verify_ledger
from hub.claims.claimable import money_text
from hub.claims.leaves import booking_leaf
from hub.claims.store import list_claims
from hub.cli import issue_token
from hub.ledger.storage import read_leaf_data
from hub.services import Hub
from hub.store.db import Database
from tests.claims.conftest import CLAIM, INSURER_A, INSURER_B, build_world, claimable, doc_id
from tests.conftest import PG_URL
from tests.deploy.server import ORIGIN, Deployment, ServerProcess

REPLICAS = 3
TASKS = 16  # concurrent client tasks per replica
DOCUMENTS = 3
SHARES = 4  # each claim asks a quarter of a bill: at most 4 of them fit


@pytest.fixture(params=["postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    if not PG_URL:
        pytest.skip("HUB_TEST_POSTGRES_URL is not set")
    return str(request.param)


async def test_three_processes_never_over_claim(database_url: str, tmp_path: Path) -> None:
    deployment = Deployment(database_url, tmp_path)
    await deployment.prepare([])
    hub = await Hub.start(deployment.settings, run_migrations=False)
    try:
        bodies = await build_world(hub, invoices=DOCUMENTS)
    finally:
        await hub.stop()
    tokens = [
        issue_token(deployment.settings, "agency", "clerk", agency, 3600)
        for agency in (INSURER_A, INSURER_B)
    ]
    share = {
        doc_id(b): (claimable(b) / SHARES).quantize(Decimal("0.01"), "ROUND_DOWN") for b in bodies
    }
    # Every task claims every document twice over: demand is far beyond what fits.
    work = [
        (doc, token) for _ in range(2) for doc in share for token in tokens for _ in range(SHARES)
    ]
    # Refusals must be the rule's, not the rate limiter's.
    servers = [ServerProcess({**deployment.env, "HUB_RATE_LIMIT": "0"}) for _ in range(REPLICAS)]
    try:
        for server in servers:
            server.wait_ready()
        answers: list[tuple[str, dict[str, Any]]] = []
        async with httpx.AsyncClient(timeout=60.0) as client:
            queue = list(work)

            async def task(url: str, number: int) -> None:
                while queue:
                    doc, token = queue.pop()
                    response = await client.post(
                        f"{url}/graphql",
                        json={
                            "query": CLAIM,
                            "variables": {
                                "id": doc,
                                "amount": money_text(share[doc]),
                                "ref": f"case-{number}-{len(queue)}",
                            },
                        },
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    assert response.status_code == 200, response.text
                    answers.append((doc, response.json()))

            urls = itertools.cycle([s.url for s in servers])
            await asyncio.gather(*(task(next(urls), n) for n in range(REPLICAS * TASKS)))
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(30)

    acknowledged = [a["data"]["claimDocument"] for _, a in answers if "errors" not in a]
    refused = [a for _, a in answers if "errors" in a]
    assert len(acknowledged) + len(refused) == len(work)
    assert {e["extensions"]["code"] for a in refused for e in a["errors"]} == {"CONFLICT"}
    assert all("still claimable" in a["errors"][0]["message"] for a in refused)

    db = Database(database_url)
    await db.open()
    try:
        stored = {c.id: c for c in await list_claims(db, limit=10_000)}
        assert {c["id"] for c in acknowledged} == set(stored)
        for doc, amount in share.items():
            on_doc = [c for c in stored.values() if c.doc_id == doc]
            # A quarter rounded down: exactly four fit, and no fifth ever did.
            assert len(on_doc) == SHARES
            assert {Decimal(c.amount) for c in on_doc} == {amount}
            total = sum(Decimal(c.amount) for c in on_doc)
            assert total <= claimable(next(b for b in bodies if doc_id(b) == doc))
        for c in acknowledged:
            record = stored[c["id"]]
            assert record.leaf_index == c["leafIndex"]
            leaf = await read_leaf_data(db, record.leaf_index)
            assert leaf == booking_leaf(record.fields, record.salt)
        report = await verify_ledger(db, deployment.verifier, ORIGIN)
        assert report.governance >= len(stored)
    finally:
        await db.close()
