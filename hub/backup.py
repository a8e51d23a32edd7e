"""`hub backup FILE`: a consistent copy of a running SQLite hub, by SQLite's online backup.

The copy is taken in one step under one read transaction, so it is one committed state of
the database (WAL mode lets the running hub keep writing meanwhile, and a step-wise copy
would restart on each of its commits). It is written beside FILE and renamed into place
only once complete and checked, so FILE is never a half-written database. PostgreSQL is
backed up with its own tools (docs/operations-backup.md).
"""

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from hub.errors import BadInput, HubError
from hub.store.db import sqlite_path


@dataclass(frozen=True)
class BackupReport:
    path: Path
    bytes: int
    tree_size: int


def backup(database_url: str, target: Path) -> BackupReport:
    """Copy the SQLite database at ``database_url`` to ``target`` (which must not exist)."""
    source = sqlite_path(database_url)
    if source is None:
        raise BadInput(
            "hub backup copies a SQLite hub; back PostgreSQL up with its own tools"
            " (pg_dump, or CloudNativePG backups: docs/operations-backup.md)"
        )
    if str(source) == ":memory:" or not source.is_file():
        raise BadInput(f"no SQLite database at {source}")
    if target.exists():
        raise BadInput(f"{target} exists: choose a new file (a backup never overwrites)")
    if target.resolve() == source.resolve():
        raise BadInput("the backup file must not be the database itself")
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        _copy(source, partial)
        tree_size = _check(partial)
        _fsync(partial)
        os.replace(partial, target)
        _fsync(target.parent)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return BackupReport(target, target.stat().st_size, tree_size)


def _copy(source: Path, partial: Path) -> None:
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(partial)
    try:
        src.backup(dst)  # pages=-1: every page in one step, one snapshot
        # A single file: the copy needs no -wal beside it to be complete.
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        dst.close()
        src.close()


def _check(path: Path) -> int:
    """The copy's tree size, once SQLite finds it sound; HubError otherwise."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (verdict,) = conn.execute("PRAGMA quick_check").fetchone()
        if verdict != "ok":
            raise HubError(f"the copy failed SQLite's check: {verdict}")
        row = conn.execute("SELECT MAX(size) FROM ledger_checkpoints").fetchone()
    except sqlite3.DatabaseError as exc:
        raise HubError(f"the copy is not a hub database: {exc}") from None
    finally:
        conn.close()
    return int(row[0] or 0)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
