"""A witness's memory: the last checkpoint it cosigned for each log, in its own SQLite file.

Checking a request against the stored checkpoint and storing the new one happen in one
``BEGIN IMMEDIATE`` transaction, committed with ``synchronous=FULL`` before the witness
signs anything, so neither a race between two requests nor a crash at any point can make
it cosign two checkpoints that are not consistent with each other.
"""

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cosigned (
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class Cosigned:
    """The latest checkpoint cosigned for a log; ``note`` carries the witness's line."""

    size: int
    root: bytes
    note: str


class WitnessState:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()

    def latest(self, origin: str) -> Cosigned | None:
        with self._lock:
            return self._read(origin)

    def _read(self, origin: str) -> Cosigned | None:
        row = self._db.execute(
            "SELECT size, root, note FROM cosigned WHERE origin = ?", [origin]
        ).fetchone()
        return Cosigned(int(row[0]), bytes(row[1]), row[2]) if row else None

    def advance(self, origin: str, decide: Callable[[Cosigned | None], tuple[Cosigned, T]]) -> T:
        """Run ``decide`` on the stored checkpoint and store what it returns, atomically.

        ``decide`` raises to refuse (nothing is written); the new state is durable when
        this returns, and only then may the caller hand out a cosignature.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                new, result = decide(self._read(origin))
                self._db.execute(
                    "INSERT INTO cosigned (origin, size, root, note) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (origin) DO UPDATE SET"
                    " size = excluded.size, root = excluded.root, note = excluded.note",
                    [origin, new.size, new.root, new.note],
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return result

    def close(self) -> None:
        with self._lock:
            self._db.close()
