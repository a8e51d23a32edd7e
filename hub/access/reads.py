"""Reads on the API's hot paths, off the writer's connection.

On SQLite, tortoise runs every query on one aiosqlite connection: each read pays a thread
hop (~200 µs, more than a point read costs) and waits behind any integrating transaction.
Reads here go through the database's read-only synchronous connection instead, which in
WAL mode sees the latest commit and never blocks the writer. Only short indexed reads
belong here: they run on the event loop. On PostgreSQL they use the connection pool.
"""

from collections.abc import Sequence
from typing import Any

from hub.store.db import Database
from hub.store.ledger import SignedHead, read_checkpoint_with


async def fetch(db: Database, query: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
    reader = db.sqlite_reader()
    if reader is None:
        return await db.sql.fetch(query, params)
    rows: list[Sequence[Any]] = reader.execute(query, list(params)).fetchall()
    return rows


async def signed_head(db: Database, size: int | None = None) -> SignedHead | None:
    """The latest signed checkpoint, or the one of ``size``; None if the log signed none."""

    async def read(query: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        return await fetch(db, query, params)

    return await read_checkpoint_with(read, size)
