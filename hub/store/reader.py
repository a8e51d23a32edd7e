"""The read side of storage: short indexed reads off the writer, one driver per dialect.

The API's hot paths (proofs, tiles, the latest checkpoint, a document by id) read
through a `Reader`; which driver a database gets is decided once, in `Database`:

- `SqliteReader`: a read-only synchronous connection on the event loop. A primary-key
  read from SQLite's page cache takes ~15 µs and the aiosqlite thread hop costs ~200 µs,
  more than the read itself; in WAL mode the connection sees the latest commit and never
  blocks the writer. Only short indexed reads belong here.
- `PostgresReader`: tortoise's pool for rows, and an asyncpg pool of its own for tiles:
  going through tortoise's client costs about three times the round trip itself, and
  proofs are the hottest read the hub serves.
- `SqlReader`: the database's own connection (an in-memory SQLite has no file for a
  second connection to open).
"""

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from hub.store.sql import Sql

__all__ = ["PostgresReader", "Reader", "SqlReader", "SqliteReader"]

MMAP_BYTES = 1 << 30
_TILES_IN = "SELECT id, width, hashes FROM ledger_tiles WHERE id IN ({})"
_TILES_ANY = "SELECT id, width, hashes FROM ledger_tiles WHERE id = ANY($1::bigint[])"

Rows = list[Sequence[Any]]


class Reader(Protocol):
    """What the read side needs of storage: rows of a query, and tiles by key."""

    async def fetch(self, query: str, params: Sequence[Any] = ()) -> Rows:
        """Rows of `query` (SQL with `?` placeholders, as hub.store.sql writes it)."""
        ...

    async def fetch_tiles(self, keys: Sequence[int]) -> Rows:
        """`(id, width, hashes)` of each stored `ledger_tiles` row among `keys`."""
        ...

    async def close(self) -> None: ...


def tiles_query(count: int) -> str:
    """The SELECT of `count` `ledger_tiles` rows by id, with `?` placeholders."""
    return _TILES_IN.format(",".join("?" * count))


class SqlReader:
    """Reads on the database's own connection."""

    def __init__(self, sql: Callable[[], Sql]) -> None:
        self._sql = sql

    async def fetch(self, query: str, params: Sequence[Any] = ()) -> Rows:
        return await self._sql().fetch(query, params)

    async def fetch_tiles(self, keys: Sequence[int]) -> Rows:
        return await self.fetch(tiles_query(len(keys)), keys) if keys else []

    async def close(self) -> None:
        pass


class SqliteReader:
    """Reads on a read-only synchronous connection to the SQLite file at `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            uri = f"file:{self.path}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            # Proofs read tiles at random across the file: map it rather than copy each
            # page through a syscall (bounded address space, not memory).
            conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
            self._conn = conn
        return self._conn

    async def fetch(self, query: str, params: Sequence[Any] = ()) -> Rows:
        rows: Rows = self._connection().execute(query, list(params)).fetchall()
        return rows

    async def fetch_tiles(self, keys: Sequence[int]) -> Rows:
        return await self.fetch(tiles_query(len(keys)), keys) if keys else []

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class PostgresReader:
    """Rows through tortoise's pool (`sql`), tiles through an asyncpg pool to `dsn`."""

    def __init__(self, sql: Callable[[], Sql], dsn: str) -> None:
        self._sql = sql
        self.dsn = dsn
        self._pool: Any = None

    async def fetch(self, query: str, params: Sequence[Any] = ()) -> Rows:
        return await self._sql().fetch(query, params)

    async def fetch_tiles(self, keys: Sequence[int]) -> Rows:
        if not keys:
            return []
        if self._pool is None:
            import asyncpg

            self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=4)
        rows: Rows = await self._pool.fetch(_TILES_ANY, list(keys))
        return rows

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
