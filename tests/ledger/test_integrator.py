"""Integration in a child process (hub.store.sqlite_integrator): order, failure and recovery."""

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvloop

from hub.audit import verify_ledger
from hub.errors import IntegratorGone
from hub.keys import create_log_key, load_log_signer
from hub.ledger.checkpoint import open_checkpoint
from hub.ledger.sequencer import Sequencer
from hub.ledger.storage import read_checkpoint, read_leaf_data
from hub.ledger.tree import leaf_hash, root_from_leaf_hashes
from hub.services import ledger_integrator
from hub.store.db import Database, migrate
from hub.store.sqlite_integrator import SqliteIntegrator
from tests.ledger.appender import (
    KillsItsStager,
    KillsItsStagerOnCue,
    PortableEntries,
    crash_entry,
)
from tests.pids import exited_within

ORIGIN = "test.example/log"
ROOT = Path(__file__).resolve().parents[2]
BATCH = 500


@asynccontextmanager
async def _ledger(tmp_path: Path) -> AsyncIterator[tuple[Database, Sequencer, SqliteIntegrator]]:
    url = f"sqlite://{tmp_path}/hub.db"
    key = tmp_path / "log.key"
    create_log_key(key, ORIGIN)
    await migrate(url)
    db = Database(url)
    await db.open()
    integrator = ledger_integrator(tmp_path / "hub.db", key, ORIGIN)
    sequencer = Sequencer(db, load_log_signer(key), ORIGIN, integrator=integrator)
    await sequencer.ensure_head()
    try:
        yield db, sequencer, integrator
    finally:
        await integrator.close()
        await db.close()


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[tuple[Database, Sequencer, SqliteIntegrator]]:
    async with _ledger(tmp_path) as parts:
        yield parts


def _entries(name: str, count: int) -> list[bytes]:
    return [f"{name}/{n}".encode() for n in range(count)]


async def _started_child(sequencer: Sequencer, integrator: SqliteIntegrator) -> int:
    """The child's pid, once a first group has gone through it."""
    await sequencer.submit(PortableEntries(_entries("one", 1)))
    pid = integrator.pid
    assert pid is not None
    return pid


async def test_groups_handed_over_at_once_commit_in_order_each_seeing_the_last(
    ledger: tuple[Database, Sequencer, SqliteIntegrator],
) -> None:
    db, _, integrator = ledger
    first, second = PortableEntries(_entries("a", 3)), PortableEntries(_entries("b", 2))
    # Both are sent before either is answered; the second's transaction must start from
    # the tree the first one committed.
    (head_a, _, _), (head_b, _, _) = [
        result
        for result, _ in await asyncio.gather(
            integrator.integrate([first]), integrator.integrate([second])
        )
    ]
    assert (head_a.size, head_b.size) == (3, 5)
    stored = await read_checkpoint(db.sql)
    assert stored is not None and stored.size == 5


async def test_concurrent_submissions_get_disjoint_indexes_under_signed_checkpoints(
    ledger: tuple[Database, Sequencer, SqliteIntegrator],
) -> None:
    db, sequencer, _ = ledger
    subs = [PortableEntries(_entries(f"s{i}", 1 + i % 4)) for i in range(40)]
    heads = await asyncio.gather(*(sequencer.submit(s) for s in subs))
    taken: set[int] = set()
    for sub, head in zip(subs, heads, strict=True):
        indexes = set(range(sub.first_index, sub.first_index + len(sub.entries)))
        assert not indexes & taken and max(indexes) < head.size
        taken |= indexes
        for offset, entry in enumerate(sub.entries):
            assert await read_leaf_data(db, sub.first_index + offset) == entry
    final = await read_checkpoint(db.sql)
    assert final is not None and final.size == len(taken) == max(taken) + 1
    hashes = [leaf_hash(await read_leaf_data(db, i)) for i in range(final.size)]
    assert final.root == root_from_leaf_hashes(hashes)
    checkpoint = open_checkpoint(final.note, sequencer.signer.verifier, ORIGIN)
    assert (checkpoint.size, checkpoint.root) == (final.size, final.root)


async def test_a_child_killed_inside_a_group_fails_only_that_group(
    ledger: tuple[Database, Sequencer, SqliteIntegrator],
) -> None:
    db, sequencer, _ = ledger
    before = PortableEntries(_entries("before", 2))
    await sequencer.submit(before)
    with pytest.raises(IntegratorGone):
        await sequencer.submit(KillsItsStager(_entries("doomed", 5)))
    after = PortableEntries(_entries("after", 1))
    head = await sequencer.submit(after)
    # Nothing of the killed group was written: the next one starts where `before` ended.
    assert after.first_index == 2 and head.size == 3
    assert await read_leaf_data(db, 2) == b"after/0"


# `hub serve` runs on uvloop, whose socket calls refuse a closed socket with ValueError
# where asyncio's raise OSError: the second group met one.
@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_a_child_killed_with_two_groups_in_hand_fails_both_as_gone(
    tmp_path: Path, loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    async def scenario() -> None:
        async with _ledger(tmp_path) as (db, sequencer, integrator):
            await _started_child(sequencer, integrator)
            # Both groups are handed over before either is answered; the child dies on
            # the first, so the second was in its hands too: each caller must hear
            # "submit again", and the next submission finds a new child.
            cue = tmp_path / "cue"
            os.mkfifo(cue)
            doomed = KillsItsStagerOnCue(_entries("doomed", 2), cue)
            behind = PortableEntries(_entries("behind", 3))
            first = asyncio.create_task(integrator.integrate([doomed]))
            second = asyncio.create_task(integrator.integrate([behind]))
            await asyncio.sleep(0)  # one turn: each task sends its group, then waits
            await asyncio.to_thread(cue.write_bytes, b"!")  # opens once the child listens
            outcomes = await asyncio.gather(first, second, return_exceptions=True)
            assert [type(o) for o in outcomes] == [IntegratorGone, IntegratorGone], outcomes
            assert all("submit again" in str(o) for o in outcomes)
            again = PortableEntries(_entries("again", 1))
            head = await sequencer.submit(again)
            assert again.first_index == 1 and head.size == 2
            assert await read_leaf_data(db, 1) == b"again/0"

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(scenario())


async def test_a_child_gone_between_groups_is_replaced_without_failing_one(
    ledger: tuple[Database, Sequencer, SqliteIntegrator],
) -> None:
    _, sequencer, integrator = ledger
    pid = await _started_child(sequencer, integrator)
    os.kill(pid, signal.SIGKILL)
    await asyncio.get_running_loop().run_in_executor(None, os.waitpid, pid, 0)
    again = PortableEntries(_entries("two", 1))
    head = await sequencer.submit(again)
    assert again.first_index == 1 and head.size == 2
    assert integrator.pid not in (None, pid)


async def test_closing_ends_the_child(
    ledger: tuple[Database, Sequencer, SqliteIntegrator],
) -> None:
    _, sequencer, integrator = ledger
    pid = await _started_child(sequencer, integrator)
    await integrator.close()
    assert integrator.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_a_parent_killed_mid_stream_leaves_whole_groups_and_no_child(
    tmp_path: Path,
) -> None:
    key = tmp_path / "log.key"
    create_log_key(key, ORIGIN)
    url = f"sqlite://{tmp_path}/hub.db"
    await migrate(url)
    # As a module: the child imports the submissions' classes by their module's name.
    command = ["-m", "tests.ledger.appender", "crash-integrated", url, str(key), ORIGIN]
    proc = subprocess.Popen(
        [sys.executable, *command, str(BATCH)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acks: list[int] = []
    child = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            word, *rest = line.split()
            if word == "child":
                child = int(rest[0])
            elif word == "ack":
                acks.append(int(rest[2]))
                if len(acks) == 10:  # free-running: the next groups are in the child's hands
                    break
        else:
            pytest.fail(f"the appender stopped by itself: {proc.communicate()[1]}")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert child is not None and exited_within(child, 30)
    db = Database(url)
    await db.open()
    try:
        await _check_whole_groups(db, key, max(acks))
    finally:
        await db.close()


async def _check_whole_groups(db: Database, key: Path, acknowledged: int) -> None:
    head = await read_checkpoint(db.sql)
    assert head is not None
    # What the child had in hand may have committed after its parent died, never in part.
    assert head.size >= acknowledged and head.size % BATCH == 0
    verifier = load_log_signer(key).verifier
    assert (await verify_ledger(db, verifier, ORIGIN)).size == head.size
    assert [await read_leaf_data(db, i) for i in range(head.size)] == [
        crash_entry(i) for i in range(head.size)
    ]
