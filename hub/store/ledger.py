"""The ledger's rows the store answers for: the integrator's lock and the checkpoints.

Each dialect's way of making one transaction the only integrator lives here, and so does
the one read of the signed checkpoints, `read_checkpoint`: the latest or the one of a
size, in a transaction (its `Sql`) or off the writer (a `Database` or its reader).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from hub.store.sql import Sql

# Any constant works; it only has to be the same in every hub process sharing the database.
ADVISORY_LOCK_KEY = 0x4C45444745524855  # "LEDGERHU"
_LATEST = "SELECT size, root, note FROM ledger_checkpoints ORDER BY size DESC LIMIT 1"
_AT_SIZE = "SELECT size, root, note FROM ledger_checkpoints WHERE size = ?"


class Fetches(Protocol):
    """Where rows come from: a transaction's `Sql`, a `Database` or a `Reader`."""

    async def fetch(self, query: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]: ...


@dataclass(frozen=True)
class SignedHead:
    """A checkpoint the log signed: tree size, root and the C2SP note."""

    size: int
    root: bytes
    note: str


async def lock_ledger(sql: Sql) -> None:
    """Make this transaction the only integrator, across every process on the database."""
    if sql.postgres:
        await sql.execute("SELECT pg_advisory_xact_lock(?)", [ADVISORY_LOCK_KEY])
    else:
        # A write as the first statement takes SQLite's RESERVED lock now (waiting on the
        # busy timeout), so a second process never reads a head it cannot then extend.
        await sql.execute("DELETE FROM ledger_checkpoints WHERE size < 0")


async def read_checkpoint(source: Fetches, size: int | None = None) -> SignedHead | None:
    """The latest signed checkpoint, or the one of ``size``; None when there is none (a
    log that signed nothing yet, a size it never signed)."""
    rows = await (source.fetch(_LATEST) if size is None else source.fetch(_AT_SIZE, [size]))
    if not rows:
        return None
    found, root, note = rows[0]
    return SignedHead(int(found), bytes(root), note)


async def insert_checkpoint(sql: Sql, head: SignedHead, signed_at: datetime) -> None:
    await sql.execute(
        "INSERT INTO ledger_checkpoints (size, root, note, signed_at) VALUES (?, ?, ?, ?)",
        [head.size, head.root, head.note, sql.moment(signed_at)],
    )
