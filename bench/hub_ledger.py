"""The hub's ledger: bulk integration through hub.ledger.storage, then proofs from the database.

Integration is the sequencer's unit of work without the queue: one transaction per chunk
appends leaves, tiles (with inner nodes) and bundles, and stores one signed checkpoint.
"""

import os
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench.leaves import CHUNK, leaves
from bench.measure import (
    Ticker,
    async_best_of,
    consistency_requests,
    inclusion_requests,
    peak_rss_mb,
    progress,
    time_async_calls,
)
from bench.report import HUB_POSTGRES, HUB_SQLITE, Row
from hub.ledger.note import generate_signer_key, parse_signer_key
from hub.ledger.storage import TileReader, append_entries, store_checkpoint
from hub.ledger.tree import HASH_SIZE, leaf_hash, verify_consistency, verify_inclusion
from hub.store.db import Database, migrate, sqlite_path

ORIGIN = "bench.example/log"
# Proofs whose result is checked against the signed roots, so a fast wrong answer fails.
CHECKED = 20


async def _integrate(
    db: Database, size: int, label: str
) -> tuple[float, bytes, list[tuple[int, bytes]]]:
    """Append leaves 0..size-1; the seconds spent in transactions, the root, the heads."""
    signer = parse_signer_key(generate_signer_key(ORIGIN)[0])
    done, root, spent = 0, b"", 0.0
    heads: list[tuple[int, bytes]] = []
    ticker = Ticker(f"{label} append", size)
    while done < size:
        chunk = leaves(done, min(CHUNK, size - done))
        started = time.perf_counter()
        async with db.transaction() as sql:
            done, root, _ = await append_entries(sql, done, chunk)
            await store_checkpoint(sql, signer, ORIGIN, done, root)
        spent += time.perf_counter() - started
        heads.append((done, root))
        ticker.tick(done)
    return spent, root, heads


async def _db_facts(db: Database, size: int) -> tuple[int, float]:
    """(inner nodes stored, database size in MB)."""
    rows = await db.sql.fetch("SELECT SUM(LENGTH(hashes)) FROM ledger_tiles")
    inner = int(rows[0][0] or 0) // HASH_SIZE - size
    path = sqlite_path(db.url)
    if path is not None:
        files = [path, path.with_name(path.name + "-wal")]
        used = sum(f.stat().st_size for f in files if f.exists())
    else:
        used = int((await db.sql.fetch("SELECT pg_database_size(current_database())"))[0][0])
    return inner, used / 1e6


async def _check(reader: TileReader, size: int, heads: list[tuple[int, bytes]]) -> None:
    """Raise (ProofError) unless sample proofs verify against the signed roots."""
    root = heads[-1][1]
    for index in inclusion_requests(size, CHECKED):
        proof = await reader.inclusion_proof(index, size)
        verify_inclusion(index, size, leaf_hash(leaves(index, 1)[0]), proof, root)
    for old, old_root in heads[:-1][:CHECKED]:
        proof = await reader.consistency_proof(old, size)
        verify_consistency(old, size, proof, old_root, root)


def _prover(reader: TileReader, kind: str, size: int) -> Callable[[int], Awaitable[list[bytes]]]:
    async def prove(arg: int) -> list[bytes]:
        if kind == "inclusion":
            return await reader.inclusion_proof(arg, size)
        return await reader.consistency_proof(arg, size)

    return prove


async def _proof_rows(
    implementation: str,
    cold: TileReader,
    warm: TileReader,
    size: int,
    proofs: int,
    budget_s: float,
) -> list[Row]:
    """Cold: no tile cache, every proof reads the database. Warm: the default tile cache,
    timed after a first pass over the same requests filled it."""
    rows = []
    for kind, args in [
        ("inclusion", inclusion_requests(size, proofs)),
        ("consistency", consistency_requests(size, proofs) if size > 1 else []),
    ]:
        if not args:
            continue
        cold_prove, warm_prove = _prover(cold, kind, size), _prover(warm, kind, size)
        t = await async_best_of(partial(time_async_calls, cold_prove, args, budget_s))
        rows.append(Row(implementation, f"{kind}_cold", size, t.mean_us, "", "", t.done, len(args)))
        await time_async_calls(warm_prove, args, budget_s)
        t = await async_best_of(partial(time_async_calls, warm_prove, args, budget_s))
        rows.append(Row(implementation, f"{kind}_warm", size, t.mean_us, "", "", t.done, len(args)))
    return rows


async def measure_hub(url: str, size: int, proofs: int, budget_s: float) -> dict[str, Any]:
    implementation = HUB_POSTGRES if url.startswith(("postgres", "asyncpg")) else HUB_SQLITE
    label = f"{implementation} {size:,}"
    await migrate(url)
    db = Database(url)
    await db.open()
    try:
        spent, root, heads = await _integrate(db, size, label)
        rss = peak_rss_mb()
        inner, used_mb = await _db_facts(db, size)
        rows = [
            Row(implementation, "append", size, size / spent),
            Row(implementation, "inner_nodes", size, inner),
            Row(implementation, "db_size", size, used_mb),
            Row(implementation, "peak_rss", size, rss),
        ]
        cold = TileReader(db, cache_tiles=0)
        warm = TileReader(db)
        await _check(cold, size, heads)
        await _check(warm, size, heads)
        progress(f"    {label} proofs")
        rows += await _proof_rows(implementation, cold, warm, size, proofs, budget_s)
        return {"rows": rows, "root": root.hex()}
    finally:
        await db.close()


async def measure_hub_sqlite(
    workdir: Path, size: int, proofs: int, budget_s: float
) -> dict[str, Any]:
    return await measure_hub(f"sqlite://{workdir}/hub.db", size, proofs, budget_s)


async def pg_admin(admin_url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def measure_hub_postgres(
    admin_url: str, size: int, proofs: int, budget_s: float
) -> dict[str, Any]:
    """As measure_hub, in a database created for this run and dropped after it."""
    name = f"hub_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    base, _, _ = admin_url.rpartition("/")
    await pg_admin(admin_url, f'CREATE DATABASE "{name}"')
    try:
        return await measure_hub(f"{base}/{name}", size, proofs, budget_s)
    finally:
        await pg_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
