"""Database connection: tortoise-orm for the models, a thin SQL layer (hub.store.sql) for the
hot paths, a reader of its dialect for the read side (hub.store.reader), and on SQLite a
writer thread of its own for write transactions."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tortoise import Tortoise, connections
from tortoise.transactions import in_transaction

from hub.store.reader import PostgresReader, Reader, Rows, SqliteReader, SqlReader
from hub.store.sql import Sql, TortoiseSql
from hub.store.sqlite_writer import SqliteWriter

__all__ = ["Database", "Sql", "migrate", "sqlite_path", "tortoise_config"]

T = TypeVar("T")
MODELS = ["hub.models"]
MIGRATIONS = "hub.migrations"
# Not the ledger's integration lock (hub.ledger.storage): "LHMIGRAT".
MIGRATION_LOCK_KEY = 0x4C484D4947524154
_POOL_OPTIONS = {"minsize", "maxsize", "max_queries", "max_inactive_connection_lifetime", "schema"}


def tortoise_config(url: str) -> dict[str, Any]:
    if url.startswith("sqlite://"):
        # A busy timeout makes a second process wait for the single SQLite writer
        # instead of failing with "database is locked".
        sep = "&" if "?" in url else "?"
        url = f"{url}{sep}busy_timeout=30000"
    return {
        "connections": {"default": url},
        "apps": {
            "models": {
                "models": MODELS,
                "migrations": MIGRATIONS,
                "default_connection": "default",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite://"):
        return None
    return Path(url.removeprefix("sqlite://").split("?", 1)[0])


class Database:
    """One hub database. It is a `Reader` too: its reads go through `reader`, the driver
    of its dialect, so the read side takes a Database or a bare reader alike."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = url.startswith(("postgres://", "postgresql://", "asyncpg://"))
        self._writer: SqliteWriter | None = None
        self.reader: Reader
        path = self.sqlite_file
        if self.postgres:
            self.reader = PostgresReader(lambda: self.sql, _libpq_url(url))
        elif path is not None:
            self.reader = SqliteReader(path)
        else:
            self.reader = SqlReader(lambda: self.sql)

    async def open(self) -> None:
        path = sqlite_path(self.url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        # Tortoise keeps its state in a contextvar; uvicorn opens the database in its
        # lifespan task, so requests (other tasks) find it only through the global fallback.
        await Tortoise.init(config=tortoise_config(self.url), _enable_global_fallback=True)

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.to_thread(self._writer.close)
            self._writer = None
        await self.reader.close()
        # Also clears the global fallback, so the next open() in this process may set it.
        await Tortoise.close_connections()

    @property
    def sql(self) -> Sql:
        return TortoiseSql(connections.get("default"), self.postgres)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Sql]:
        async with in_transaction("default") as tx:
            yield TortoiseSql(tx, self.postgres)

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite database file; None on PostgreSQL and for an in-memory database."""
        path = None if self.postgres else sqlite_path(self.url)
        return None if path is None or str(path) == ":memory:" else path

    async def write_transaction(self, work: Callable[[Sql], Awaitable[T]]) -> T:
        """`work(sql)` in one write transaction; its exception rolls it back.

        On a SQLite file the whole of `work` runs on the writer thread (hub.store.sqlite_writer),
        so it must await nothing but `sql`; elsewhere it runs in a tortoise transaction.
        """
        path = self.sqlite_file
        if path is None:
            async with self.transaction() as sql:
                return await work(sql)
        if self._writer is None:
            self._writer = SqliteWriter(path)
        return await self._writer.run(work)

    async def fetch(self, query: str, params: Sequence[Any] = ()) -> Rows:
        """Rows of a short indexed read, off the writer (see hub.store.reader)."""
        return await self.reader.fetch(query, params)

    async def fetch_tiles(self, keys: Sequence[int]) -> Rows:
        return await self.reader.fetch_tiles(keys)


async def migrate(url: str) -> None:
    """Apply tortoise's migrations (`hub migrate`; `hub serve` runs it on start)."""
    from tortoise.migrations.api import migrate as run_migrations

    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    async with _migration_lock(url):
        await run_migrations(config=tortoise_config(url))
        await connections.close_all()


def _libpq_url(url: str) -> str:
    """The URL for a plain asyncpg connection: tortoise's pool options removed."""
    parts = urlsplit("postgresql://" + url.split("://", 1)[1])
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in _POOL_OPTIONS]
    return urlunsplit(parts._replace(query=urlencode(query)))


@asynccontextmanager
async def _migration_lock(url: str) -> AsyncIterator[None]:
    """On PostgreSQL, one migrator at a time: replicas starting together would race."""
    if not url.startswith(("postgres://", "postgresql://", "asyncpg://")):
        yield  # SQLite's single writer already serialises the migrations
        return
    import asyncpg

    conn = await asyncpg.connect(_libpq_url(url))
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        yield
    finally:
        await conn.close()  # ends the session, which releases the lock


# For `make migrations` (tortoise makemigrations compares the models with the migrations).
MIGRATIONS_CONFIG = tortoise_config("sqlite://var/makemigrations.db")
