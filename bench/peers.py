"""The peers on the same leaves: pymerkle (InmemoryTree, SqliteTree), merkletools, raw SQLite.

Each is driven through its fastest bulk path, one chunk at a time like the hub, with leaf
generation outside the timed region. pymerkle indexes leaves from 1; requests here are the
hub's 0-based ones shifted, so every implementation proves the same leaves.
"""

import hashlib
import sqlite3
import time
import warnings
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.leaves import CHUNK, chunks
from bench.measure import (
    Ticker,
    Timing,
    best_of,
    consistency_requests,
    inclusion_requests,
    peak_rss_mb,
    progress,
    time_calls,
)
from bench.report import INMEMORY, MERKLETOOLS, RAW_SQLITE, SQLITETREE, Row


def _pymerkle_rows(
    implementation: str, tree: Any, size: int, proofs: int, budget_s: float
) -> list[Row]:
    """Proof times: cold is a pass right after clearing pymerkle's subroot cache (which
    fills as the pass goes), warm a pass over the same requests after that."""
    rows = []
    progress(f"    {implementation} {size:,} proofs")
    requests = [
        (
            "inclusion",
            inclusion_requests(size, proofs),
            lambda i: tree.prove_inclusion(i + 1, size),
        ),
        (
            "consistency",
            consistency_requests(size, proofs) if size > 1 else [],
            lambda old: tree.prove_consistency(old, size),
        ),
    ]
    for kind, args, prove in requests:
        if not args:
            continue

        def cold_pass(prove: Any = prove, args: list[int] = args) -> Timing:
            tree.cache_clear()
            return time_calls(prove, args, budget_s)

        cold = best_of(cold_pass)
        warm = best_of(partial(time_calls, prove, args[: cold.done], budget_s))
        for variant, t in (("cold", cold), ("warm", warm)):
            rows.append(_timing_row(implementation, f"{kind}_{variant}", size, t, len(args)))
    return rows


def _timing_row(implementation: str, metric: str, size: int, t: Timing, wanted: int) -> Row:
    return Row(implementation, metric, size, t.mean_us, "", "", t.done, wanted)


def _append_all(label: str, size: int, append: Any) -> float:
    spent, done = 0.0, 0
    ticker = Ticker(f"{label} append", size)
    for chunk in chunks(size, CHUNK):
        started = time.perf_counter()
        append(chunk)
        spent += time.perf_counter() - started
        done += len(chunk)
        ticker.tick(done)
    return spent


def measure_inmemory(size: int, proofs: int, budget_s: float) -> dict[str, Any]:
    from pymerkle import InmemoryTree

    tree = InmemoryTree(algorithm="sha256")
    spent = _append_all(f"{INMEMORY} {size:,}", size, tree.append_entries)
    rows = [
        Row(INMEMORY, "append", size, size / spent),
        Row(INMEMORY, "peak_rss", size, peak_rss_mb()),
        *_pymerkle_rows(INMEMORY, tree, size, proofs, budget_s),
    ]
    return {"rows": rows, "root": tree.get_root(size).hex()}


def measure_sqlitetree(workdir: Path, size: int, proofs: int, budget_s: float) -> dict[str, Any]:
    from pymerkle import SqliteTree

    path = workdir / "pymerkle.db"
    with SqliteTree(str(path), algorithm="sha256") as tree:
        # append_entries is SqliteTree's bulk path: one transaction, executemany per chunk.
        spent = _append_all(
            f"{SQLITETREE} {size:,}",
            size,
            lambda chunk: tree.append_entries(chunk, chunksize=len(chunk)),
        )
        rows = [
            Row(SQLITETREE, "append", size, size / spent),
            Row(SQLITETREE, "db_size", size, path.stat().st_size / 1e6),
            Row(SQLITETREE, "peak_rss", size, peak_rss_mb()),
            *_pymerkle_rows(SQLITETREE, tree, size, proofs, budget_s),
        ]
        root = tree.get_root(size).hex()
    return {"rows": rows, "root": root}


def import_merkletools() -> ModuleType:
    with warnings.catch_warnings():
        # It warns that pysha3 (keccak) is missing; sha256 needs only hashlib.
        warnings.simplefilter("ignore", UserWarning)
        import merkletools
    return merkletools


def measure_merkletools(size: int, proofs: int, budget_s: float) -> dict[str, Any]:
    """add_leaf (hex of SHA-256 of each leaf, as it takes them) per chunk, then make_tree."""
    tree = import_merkletools().MerkleTools(hash_type="sha256")
    spent = _append_all(
        f"{MERKLETOOLS} {size:,}",
        size,
        lambda chunk: tree.add_leaf([hashlib.sha256(x).hexdigest() for x in chunk]),
    )
    started = time.perf_counter()
    tree.make_tree()
    spent += time.perf_counter() - started
    args = inclusion_requests(size, proofs)
    t = best_of(partial(time_calls, tree.get_proof, args, budget_s))
    rows = [
        Row(MERKLETOOLS, "append", size, size / spent, "add_leaf + make_tree"),
        Row(MERKLETOOLS, "peak_rss", size, peak_rss_mb()),
        _timing_row(MERKLETOOLS, "inclusion", size, t, len(args)),
    ]
    return {"rows": rows, "root": None}


def measure_raw_sqlite(workdir: Path, size: int) -> dict[str, Any]:
    """The yardstick: rows/s of one executemany of (int, 200-byte blob) in one transaction,
    in WAL mode like the hub's SQLite connection."""
    path = workdir / f"raw-{size}.db"
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
        blobs = [hashlib.sha256(b"%d" % i).digest() * 7 for i in range(256)]
        blobs = [b[:200] for b in blobs]
        started = time.perf_counter()
        con.execute("BEGIN")
        con.executemany(
            "INSERT INTO rows VALUES (?, ?)", ((i, blobs[i & 255]) for i in range(size))
        )
        con.execute("COMMIT")
        spent = time.perf_counter() - started
    finally:
        con.close()
    return {"rows": [Row(RAW_SQLITE, "insert", size, size / spent)], "root": None}
