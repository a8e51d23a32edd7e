"""Three OS processes, each with many tasks, append to one ledger at the same time."""

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from hub.audit import verify_ledger
from hub.keys import create_log_key, load_log_signer
from hub.ledger.checkpoint import open_checkpoint
from hub.ledger.storage import TileReader, decode_bundle, read_checkpoint
from hub.ledger.tree import leaf_hash, root_from_leaf_hashes, verify_consistency
from hub.store.db import Database
from tests.ledger.appender import SUBMISSIONS, TASKS, concurrent_entry

ORIGIN = "test.example/log"
APPENDER = Path(__file__).with_name("appender.py")
PROCESSES = ("p0", "p1", "p2")


async def stored_leaves(db: Database) -> list[bytes]:
    rows = await db.sql.fetch("SELECT data FROM ledger_bundles ORDER BY id")
    return [entry for (data,) in rows for entry in decode_bundle(bytes(data))]


def run_appenders(database_url: str, key: Path, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Start the appenders, release them together once all are ready, collect their acks."""
    procs = {
        name: subprocess.Popen(
            [
                sys.executable,
                str(APPENDER),
                "concurrent",
                database_url,
                str(key),
                ORIGIN,
                str(tmp_path / f"{name}.json"),
                name,
                str(seed),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed, name in enumerate(PROCESSES)
    }
    try:
        for name, proc in procs.items():
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line == "ready\n", f"{name} did not start: {proc.communicate()[1]}"
        for proc in procs.values():
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for name, proc in procs.items():
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, f"{name} failed:\n{err}"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in PROCESSES}


async def test_three_processes_append_one_gapless_consistent_log(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    key = tmp_path / "log.key"
    create_log_key(key, ORIGIN)
    verifier = load_log_signer(key).verifier

    reports = run_appenders(database_url, key, tmp_path)
    # The appenders really ran at the same time (SQLite may let one hold the lock for a
    # while, so their spans need not interleave; their working times must overlap).
    assert max(r["started"] for r in reports.values()) < min(
        r["finished"] for r in reports.values()
    )
    acks: dict[str, list[dict[str, Any]]] = {name: r["acks"] for name, r in reports.items()}

    spans = sorted((a["first_index"], a["count"], name) for name, got in acks.items() for a in got)
    assert len(spans) == len(PROCESSES) * TASKS * SUBMISSIONS
    at = 0
    for first, count, _ in spans:
        assert first == at, f"gap or overlap at index {at}"
        at += count
    n = at
    head = await read_checkpoint(db.sql)
    assert head is not None and head.size == n

    # Every entry sits at the index its process was told.
    leaves = await stored_leaves(db)
    assert len(leaves) == n
    for name, got in acks.items():
        for a in got:
            expected = [
                concurrent_entry(name, a["task"], a["submission"], i) for i in range(a["count"])
            ]
            assert leaves[a["first_index"] : a["first_index"] + a["count"]] == expected

    hashes = [leaf_hash(x) for x in leaves]
    stored = await db.sql.fetch("SELECT size, root, note FROM ledger_checkpoints ORDER BY size")
    signed = {int(s): (bytes(r), note) for s, r, note in stored}
    # Every acknowledgement carries a verifying checkpoint that covers it and was stored.
    for a in (a for got in acks.values() for a in got):
        size, root = a["size"], bytes.fromhex(a["root"])
        assert size >= a["first_index"] + a["count"]
        cp = open_checkpoint(a["note"], verifier, ORIGIN)
        assert (cp.size, cp.root) == (size, root)
        assert root == root_from_leaf_hashes(hashes[:size])
        assert signed[size] == (root, a["note"])

    # Every stored checkpoint is consistent with the final one and with its successor.
    reader = TileReader(db)
    sizes = sorted(signed)
    assert sizes[0] == 0 and sizes[-1] == n
    final_root = root_from_leaf_hashes(hashes)
    assert signed[n][0] == final_root
    pairs = {(old, n) for old in sizes[1:-1]} | set(itertools.pairwise(sizes[1:]))
    for old, new in sorted(pairs):
        proof = await reader.consistency_proof(old, new)
        verify_consistency(old, new, proof, signed[old][0], signed[new][0])
        open_checkpoint(signed[old][1], verifier, ORIGIN)

    report = await verify_ledger(db, verifier, ORIGIN)
    assert (report.size, report.checkpoints) == (n, len(sizes))
