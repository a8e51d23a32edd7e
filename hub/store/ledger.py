"""The ledger's rows the store answers for: the integrator's lock and the checkpoints.

Each dialect's way of making one transaction the only integrator lives here, and so does
the one read path of the signed checkpoints: the latest (`read_head`) or the one of a size
(`read_checkpoint`), on a transaction's `Sql` or on the database's read-only connection
(`read_head_off_writer`, for the API's hot paths).
"""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.store.sql import Sql

# Any constant works; it only has to be the same in every hub process sharing the database.
ADVISORY_LOCK_KEY = 0x4C45444745524855  # "LEDGERHU"
_LATEST = "SELECT size, root, note FROM ledger_checkpoints ORDER BY size DESC LIMIT 1"
_AT_SIZE = "SELECT size, root, note FROM ledger_checkpoints WHERE size = ?"

Fetch = Callable[[str, Sequence[Any]], Awaitable[list[Sequence[Any]]]]


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


async def read_checkpoint_with(fetch: Fetch, size: int | None = None) -> SignedHead | None:
    """The latest signed checkpoint, or the one of ``size``, through ``fetch``; None when
    there is none (a log that signed nothing yet, a size it never signed)."""
    rows = await (fetch(_LATEST, ()) if size is None else fetch(_AT_SIZE, [size]))
    if not rows:
        return None
    found, root, note = rows[0]
    return SignedHead(int(found), bytes(root), note)


async def read_head(sql: Sql) -> SignedHead | None:
    """The latest signed checkpoint, read in ``sql``'s transaction (or connection)."""
    return await read_checkpoint_with(sql.fetch)


async def insert_checkpoint(sql: Sql, head: SignedHead, signed_at: datetime) -> None:
    await sql.execute(
        "INSERT INTO ledger_checkpoints (size, root, note, signed_at) VALUES (?, ?, ?, ?)",
        [head.size, head.root, head.note, sql.moment(signed_at)],
    )
