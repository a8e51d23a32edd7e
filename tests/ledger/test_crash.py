"""A process killed with SIGKILL while integrating leaves a ledger that verifies and keeps
every acknowledged entry; the batch in flight is there entirely or not at all."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hub.audit import verify_ledger
from hub.keys import create_log_key, load_log_signer
from hub.ledger.sequencer import Sequencer
from hub.ledger.storage import decode_bundle, read_checkpoint
from hub.ledger.tree import leaf_hash, root_from_leaf_hashes
from hub.store.db import Database
from tests.ledger.appender import IndexedEntries, crash_entry, hub_ledger_verify

ORIGIN = "test.example/log"
APPENDER = Path(__file__).with_name("appender.py")
BATCH = 500  # two to three entry bundles and the tiles above them per commit
ACKS = 20


async def stored_leaves(db: Database) -> list[bytes]:
    rows = await db.sql.fetch("SELECT data FROM ledger_bundles ORDER BY id")
    return [entry for (data,) in rows for entry in decode_bundle(bytes(data))]


def run_and_kill(database_url: str, key: Path, pause_at: str) -> list[tuple[int, int, int]]:
    """Run the crash appender, SIGKILL it at `pause_at`; return the acks it printed."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(APPENDER),
            "crash",
            database_url,
            str(key),
            ORIGIN,
            str(BATCH),
            str(ACKS),
            pause_at,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acks: list[tuple[int, int, int]] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            word, *rest = line.split()
            if word == "ack":
                first, count, size = map(int, rest)
                acks.append((first, count, size))
                # Free-running: the next batch is already being integrated as we kill.
                if pause_at == "none" and len(acks) == ACKS:
                    break
            elif word == "paused":
                # Stopped inside the open transaction, just before writing to `pause_at`.
                assert rest == [pause_at] and len(acks) >= ACKS
                break
        else:
            pytest.fail(f"the appender stopped by itself: {proc.communicate()[1]}")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    return acks


@pytest.mark.parametrize(
    # Killed holding the lock before any write; with leaves and tiles written but no
    # checkpoint yet; and free-running, wherever the next batch happens to be.
    "pause_at",
    ["ledger_tiles", "ledger_checkpoints", "none"],
)
async def test_sigkill_mid_integration_keeps_every_acknowledged_entry(
    db: Database, database_url: str, tmp_path: Path, pause_at: str
) -> None:
    key = tmp_path / "log.key"
    create_log_key(key, ORIGIN)

    acks = run_and_kill(database_url, key, pause_at)

    assert [first for first, _, _ in acks] == [i * BATCH for i in range(len(acks))]
    acknowledged = max(size for _, _, size in acks)
    head = await read_checkpoint(db.sql)
    assert head is not None
    verifier = load_log_signer(key).verifier
    assert (await verify_ledger(db, verifier, ORIGIN)).size == head.size
    if pause_at == "ledger_checkpoints":
        # `hub ledger verify` runs the same audit; one run per backend shows the command.
        result = hub_ledger_verify(database_url, key, tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"ledger OK: {head.size} leaves")
    if pause_at == "none":
        # Batches printed after the one we read may have committed, but never in part.
        assert head.size >= acknowledged and head.size % BATCH == 0
    else:
        assert head.size == acknowledged  # the transaction in flight rolled back
    leaves = await stored_leaves(db)
    assert leaves == [crash_entry(i) for i in range(head.size)]

    # The log carries on from where the crash left it.
    seq = Sequencer(db, load_log_signer(key), ORIGIN)
    more = IndexedEntries(3)
    after = await seq.submit(more)
    assert (more.first_index, after.size) == (head.size, head.size + 3)
    hashes = [leaf_hash(x) for x in [*leaves, *(crash_entry(head.size + i) for i in range(3))]]
    assert after.root == root_from_leaf_hashes(hashes)
