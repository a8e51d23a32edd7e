"""Many writers, one log: three `hub serve` processes on one PostgreSQL database."""

import asyncio
import base64
import itertools
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.documents.demo_data import demo_invoices
from hub.ledger.checkpoint import open_checkpoint
from hub.ledger.storage import TileReader
from hub.ledger.tree import verify_consistency
from hub.store.db import Database
from tests.conftest import PG_URL
from tests.deploy.server import ORIGIN, Deployment, ServerProcess, hospital_of, submit

REPLICAS = 3
CLIENTS = 24  # concurrent client tasks, spread over the replicas
INVOICES = 360
BATCH = (1, 2, 3, 5)  # request sizes, in turn


@pytest.fixture(params=["postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Replicas share PostgreSQL; SQLite is the one-machine database."""
    if not PG_URL:
        pytest.skip("HUB_TEST_POSTGRES_URL is not set")
    return str(request.param)


def start_replicas(deployment: Deployment, count: int) -> list[ServerProcess]:
    servers = [deployment.serve() for _ in range(count)]
    try:
        for server in servers:
            server.wait_ready()
    except BaseException:
        for server in servers:
            server.kill()
        raise
    return servers


def requests_for(invoices: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Group invoices by hospital (one token each), then cut them into small requests."""
    by_hospital: dict[str, list[dict[str, Any]]] = {}
    for invoice in invoices:
        by_hospital.setdefault(hospital_of(invoice), []).append(invoice)
    sizes = itertools.cycle(BATCH)
    out = []
    for group in by_hospital.values():
        at = 0
        while at < len(group):
            size = next(sizes)
            out.append(group[at : at + size])
            at += size
    return out


async def test_three_replicas_write_one_gapless_consistent_log(
    database_url: str, tmp_path: Path
) -> None:
    deployment = Deployment(database_url, tmp_path)
    await deployment.prepare()
    verifier = deployment.verifier
    invoices = demo_invoices(INVOICES, seed=61)
    tokens = {inst: deployment.token(inst) for inst in {hospital_of(i) for i in invoices}}
    queue = requests_for(invoices)

    servers = start_replicas(deployment, REPLICAS)
    try:
        urls = [s.url for s in servers]
        notes: list[str] = []  # every checkpoint any replica served, in any way
        results: list[dict[str, Any]] = []
        done = asyncio.Event()

        async with httpx.AsyncClient(timeout=60.0) as client:

            async def writer(n: int) -> None:
                while queue:
                    batch = queue.pop()
                    url = urls[(n + len(queue)) % REPLICAS]
                    payload = await submit(client, url, tokens[hospital_of(batch[0])], batch)
                    results.extend(payload["results"])
                    notes.append(payload["checkpoint"]["note"])

            async def watcher(url: str) -> int:
                polls = 0
                while not done.is_set():
                    response = await client.get(f"{url}/log/checkpoint")
                    assert response.status_code == 200
                    notes.append(response.text)
                    polls += 1
                return polls

            watchers = [asyncio.create_task(watcher(url)) for url in urls]
            try:
                await asyncio.gather(*(writer(n) for n in range(CLIENTS)))
            finally:
                done.set()
                polls = await asyncio.gather(*watchers)
            # One more look from each replica, after the last write.
            for url in urls:
                notes.append((await client.get(f"{url}/log/checkpoint")).text)

        for server in servers:
            server.terminate()
        for server in servers:
            assert server.wait(30) == 0, server.output()
    finally:
        for server in servers:
            server.kill()

    assert all(polls), "every replica served checkpoints while the others wrote"
    # Every invoice got exactly one leaf, and the leaves are 0..n-1.
    assert [r["status"] for r in results] == ["CREATED"] * INVOICES
    indexes = sorted(r["leafIndex"] for r in results)
    assert indexes == list(range(INVOICES))

    # Every checkpoint is signed, and one size never has two roots.
    roots: dict[int, bytes] = {}
    for note in notes:
        cp = open_checkpoint(note, verifier, ORIGIN)
        assert roots.setdefault(cp.size, cp.root) == cp.root, f"two roots for size {cp.size}"
    sizes = sorted(roots)
    assert sizes[-1] == INVOICES and len(sizes) > REPLICAS

    db = Database(database_url)
    await db.open()
    try:
        reader = TileReader(db)
        # Each result's leaf hash is the one the log stores at its index.
        for r in results:
            stored = await reader.leaf_hash(r["leafIndex"])
            assert base64.b64encode(stored).decode() == r["leafHash"]
        # Each checkpoint is consistent with the next one and with the last one, so with
        # every later one.
        pairs = set(itertools.pairwise(sizes)) | {(s, sizes[-1]) for s in sizes[:-1]}
        for old, new in sorted(pairs):
            if old == 0:
                continue  # the empty tree is a prefix of any tree; there is nothing to prove
            proof = await reader.consistency_proof(old, new)
            verify_consistency(old, new, proof, roots[old], roots[new])
    finally:
        await db.close()

    audit = deployment.cli("ledger", "verify")
    assert audit.returncode == 0, audit.stderr
    assert f"ledger OK: {INVOICES} leaves" in audit.stdout


async def test_replicas_starting_together_migrate_one_at_a_time(
    database_url: str, tmp_path: Path
) -> None:
    """Three `hub migrate` at once on a fresh database: the advisory lock serialises them."""
    deployment = Deployment(database_url, tmp_path)
    procs = [
        await asyncio.create_subprocess_exec(
            *deployment.cli_argv("migrate"),
            env=deployment.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(REPLICAS)
    ]
    outputs = await asyncio.gather(*(p.communicate() for p in procs))
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
        assert b"database is up to date" in out
