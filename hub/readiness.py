"""`/readyz`: whether a write would pass now, not only whether the database answers.

A hub whose every submission fails (a full disk, a database that refuses writes) must
leave the load balancer's rotation; a read alone answers "ready" all along.
"""

import os
from pathlib import Path

from hub.outages import outage
from hub.store.db import Database
from hub.store.ledger import read_checkpoint

# Free bytes below which the SQLite file's disk counts as full: a few of the largest
# requests (2 MiB bodies, written with their tiles and index rows) must still fit.
MIN_FREE_BYTES = 8 << 20


class _RollBack(Exception):
    """Ends the PostgreSQL probe's transaction without committing it."""


async def write_refusal(db: Database) -> str | None:
    """Why a write would fail now (a sentence for the probe's body); None when ready."""
    try:
        await read_checkpoint(db.sql)  # on the writers' connection: the one a write needs
        path = db.sqlite_file
        if path is not None:
            return _disk_refusal(path)
        if db.postgres:
            await _probe_postgres(db)
    except Exception as exc:  # any failure means "not ready", never a stack trace
        found = outage(exc)
        return f"database unavailable: {found.cause}" if found else "database check failed"
    return None


def _disk_refusal(path: Path) -> str | None:
    stats = os.statvfs(path.parent)
    free = stats.f_bavail * stats.f_frsize
    if free < MIN_FREE_BYTES:
        return f"disk full: {free} bytes free where the database is, {MIN_FREE_BYTES} needed"
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        return "the database file is not writable"
    return None


async def _probe_postgres(db: Database) -> None:
    """Write a page that must go to disk, then roll back: on a full disk the server refuses
    to extend the file (SQLSTATE 53100), as it would refuse the ledger's rows."""
    try:
        async with db.transaction() as sql:
            await sql.execute("CREATE TEMP TABLE hub_ready_probe (n bigint) ON COMMIT DROP")
            await sql.execute("INSERT INTO hub_ready_probe SELECT generate_series(1, 300)")
            raise _RollBack
    except _RollBack:
        pass
