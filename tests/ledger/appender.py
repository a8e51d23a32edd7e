"""A ledger writer run as its own OS process by the concurrency and crash tests.

The tests run it by path; `python -m tests.ledger.appender` works from the repository root.

    python -m tests.ledger.appender concurrent DB_URL KEY_FILE ORIGIN OUT.json NAME SEED
    python -m tests.ledger.appender crash DB_URL KEY_FILE ORIGIN BATCH ACKS PAUSE_AT
    python -m tests.ledger.appender crash-integrated SQLITE_URL KEY_FILE ORIGIN BATCH

`concurrent` sets up, prints "ready", waits for a line on stdin (the start signal shared by
every process), runs many tasks that submit small batches at once through one Sequencer,
and writes what each submission was acknowledged with to OUT.json, with the monotonic
(system-wide) clock at the start signal and at the end.

`crash` appends batches of BATCH entries forever, one after the other, and prints
"ack <first_index> <count> <size>" on stdout once a batch is committed. After ACKS acks,
when the integrating transaction is about to write to table PAUSE_AT (ledger_tiles,
ledger_bundles or ledger_checkpoints), it prints "paused <table>" and stops there, inside
the open transaction, until killed; PAUSE_AT "none" never stops. Entry data is a function
of the leaf index (`crash_entry`), so a reader can check it.
"""

import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from hub.keys import load_log_signer
from hub.ledger.sequencer import Sequencer, Staged
from hub.services import ledger_integrator
from hub.store.db import Database, Sql

T = TypeVar("T")
TASKS = 20
SUBMISSIONS = 10
_TABLE = re.compile(r"INSERT INTO (\w+)")


def concurrent_entry(name: str, task: int, submission: int, n: int) -> bytes:
    return f"{name}/{task}/{submission}/{n}".encode()


def crash_entry(index: int) -> bytes:
    return f"crash-test leaf {index:08d}".encode()


class Entries:
    """Appends fixed entries and remembers the index the first one got."""

    def __init__(self, entries: list[bytes]) -> None:
        self.entries = entries
        self.first_index = -1

    async def stage(self, sql: Sql, first_index: int, group: dict[str, Any]) -> Staged:
        self.first_index = first_index
        return Staged(entries=list(self.entries))


class _CarriesFirstIndex:
    """Makes a submission Portable: staged in the integrator's process
    (hub.store.sqlite_integrator), it brings back the index its first entry got."""

    first_index: int

    def outcome(self) -> object:
        return self.first_index

    def absorb(self, outcome: object) -> None:
        assert isinstance(outcome, int)
        self.first_index = outcome


class PortableEntries(_CarriesFirstIndex, Entries):
    """Entries that can be staged in the integrator's process."""


class KillsItsStager(PortableEntries):
    """SIGKILLs the process that stages it, unless that is the process that made it."""

    def __init__(self, entries: list[bytes]) -> None:
        super().__init__(entries)
        self.maker = os.getpid()

    async def stage(self, sql: Sql, first_index: int, group: dict[str, Any]) -> Staged:
        if os.getpid() == self.maker:
            raise RuntimeError("meant to be staged in another process")
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


class KillsItsStagerOnCue(KillsItsStager):
    """As KillsItsStager, once a byte arrives on the FIFO `cue`: the test decides when."""

    def __init__(self, entries: list[bytes], cue: Path) -> None:
        super().__init__(entries)
        self.cue = cue

    async def stage(self, sql: Sql, first_index: int, group: dict[str, Any]) -> Staged:
        if os.getpid() != self.maker:
            with self.cue.open("rb") as cue:  # blocks until the test opens it, then reads
                cue.read(1)
        return await super().stage(sql, first_index, group)


class IndexedEntries:
    """Appends `count` entries whose data is derived from the index each one gets."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.first_index = -1

    async def stage(self, sql: Sql, first_index: int, group: dict[str, Any]) -> Staged:
        self.first_index = first_index
        return Staged(entries=[crash_entry(first_index + i) for i in range(self.count)])


class PortableIndexedEntries(_CarriesFirstIndex, IndexedEntries):
    """IndexedEntries that can be staged in the integrator's process."""


class PausingSql(Sql):
    """Stops before a write to `pause_at` once armed, so the test can kill mid-transaction."""

    pause_at = "none"
    armed = False

    def __init__(self, sql: Sql) -> None:
        self.sql = sql
        self.postgres = sql.postgres

    async def fetch(self, query: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        return await self.sql.fetch(query, params)

    async def execute_many(self, query: str, rows: Sequence[Sequence[Any]]) -> None:
        self._maybe_pause(query)
        await self.sql.execute_many(query, rows)

    async def execute(self, query: str, params: Sequence[Any] = ()) -> None:
        self._maybe_pause(query)
        await self.sql.execute(query, params)

    def _maybe_pause(self, query: str) -> None:
        found = _TABLE.search(query)
        if PausingSql.armed and found and found.group(1) == PausingSql.pause_at:
            _say(f"paused {PausingSql.pause_at}")
            sys.stdin.readline()  # blocks the whole process, transaction open; never answered
            os._exit(3)  # the test should have killed us; leave without committing


class PausingDatabase(Database):
    async def write_transaction(self, work: Callable[[Sql], Awaitable[T]]) -> T:
        return await super().write_transaction(lambda sql: work(PausingSql(sql)))


def hub_ledger_verify(
    database_url: str, key: Path, tmp_path: Path, origin: str = "test.example/log"
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HUB_DATABASE_URL": database_url,
        "HUB_LOG_KEY_FILE": str(key),
        "HUB_ORIGIN": origin,
        "HUB_DATA_DIR": str(tmp_path / "var"),
    }
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", "ledger", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def run_concurrent(
    url: str, key_file: str, origin: str, out: str, name: str, seed: int
) -> None:
    db = Database(url)
    await db.open()
    try:
        seq = Sequencer(db, load_log_signer(Path(key_file)), origin)
        await seq.ensure_head()
        rng = random.Random(seed)
        plans = [[rng.randint(1, 5) for _ in range(SUBMISSIONS)] for _ in range(TASKS)]
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        started = time.monotonic()

        async def task(t: int) -> list[dict[str, Any]]:
            acks = []
            for s, count in enumerate(plans[t]):
                sub = Entries([concurrent_entry(name, t, s, n) for n in range(count)])
                head = await seq.submit(sub)
                acks.append(
                    {
                        "task": t,
                        "submission": s,
                        "first_index": sub.first_index,
                        "count": count,
                        "size": head.size,
                        "root": head.root.hex(),
                        "note": head.note,
                    }
                )
            return acks

        results = await asyncio.gather(*(task(t) for t in range(TASKS)))
        report = {
            "started": started,
            "finished": time.monotonic(),
            "acks": [a for acks in results for a in acks],
        }
        Path(out).write_text(json.dumps(report))
    finally:
        await db.close()


async def run_crash(
    url: str, key_file: str, origin: str, batch: int, acks: int, pause_at: str
) -> None:
    db = PausingDatabase(url)
    await db.open()
    seq = Sequencer(db, load_log_signer(Path(key_file)), origin)
    PausingSql.pause_at = pause_at
    done = 0
    while True:
        sub = IndexedEntries(batch)
        head = await seq.submit(sub)
        _say(f"ack {sub.first_index} {batch} {head.size}")
        done += 1
        PausingSql.armed = done >= acks


async def run_crash_integrated(url: str, key_file: str, origin: str, batch: int) -> None:
    """As `crash` with PAUSE_AT none, the groups integrated by a SqliteIntegrator child;
    prints "child <pid>" before the first ack."""
    db = Database(url)
    await db.open()
    path = url.removeprefix("sqlite://")
    integrator = ledger_integrator(Path(path), Path(key_file), origin)
    seq = Sequencer(db, load_log_signer(Path(key_file)), origin, integrator=integrator)
    # Run as __main__, this module's classes would pickle under a name the child cannot
    # import; the module imported by its own name gives them one it can.
    from tests.ledger import appender

    told = False
    while True:
        sub = appender.PortableIndexedEntries(batch)
        head = await seq.submit(sub)
        if not told:
            _say(f"child {integrator.pid}")
            told = True
        _say(f"ack {sub.first_index} {batch} {head.size}")


def main(argv: list[str]) -> None:
    mode, url, key_file, origin, *rest = argv
    if mode == "concurrent":
        out, name, seed = rest
        asyncio.run(run_concurrent(url, key_file, origin, out, name, int(seed)))
    elif mode == "crash":
        batch, acks, pause_at = rest
        asyncio.run(run_crash(url, key_file, origin, int(batch), int(acks), pause_at))
    elif mode == "crash-integrated":
        (batch,) = rest
        asyncio.run(run_crash_integrated(url, key_file, origin, int(batch)))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
