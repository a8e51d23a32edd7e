"""Database connection: tortoise-orm for the models, a thin SQL layer (hub.store.sql) for the
hot paths, and on SQLite a writer thread of its own for write transactions."""

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tortoise import Tortoise, connections
from tortoise.transactions import in_transaction

from hub.store.sql import Sql, TortoiseSql
from hub.store.sqlite_writer import SqliteWriter

__all__ = ["Database", "Sql", "migrate", "sqlite_path", "tortoise_config"]

T = TypeVar("T")
MODELS = ["hub.models"]
MIGRATIONS = "hub.migrations"
READER_MMAP_BYTES = 1 << 30
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
    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = url.startswith(("postgres://", "postgresql://", "asyncpg://"))
        self._reader: sqlite3.Connection | None = None
        self._read_pool: Any = None
        self._writer: SqliteWriter | None = None

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
        if self._read_pool is not None:
            await self._read_pool.close()
            self._read_pool = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
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

    def sqlite_reader(self) -> sqlite3.Connection | None:
        """A read-only synchronous SQLite connection for point reads on the event loop.

        A primary-key read from SQLite's page cache takes ~15 µs; the aiosqlite thread hop
        costs ~200 µs, more than the read itself, so proofs read through this instead.
        """
        if self._reader is not None:
            return self._reader
        path = self.sqlite_file
        if path is None:
            return None
        self._reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        # Proofs read tiles at random across the file: map it rather than copy each
        # page through a syscall (bounded address space, not memory).
        self._reader.execute(f"PRAGMA mmap_size={READER_MMAP_BYTES}")
        return self._reader

    async def postgres_reader(self) -> Any:
        """An asyncpg pool of its own for point reads on PostgreSQL (proofs).

        Going through tortoise's client costs about three times the round trip itself
        here, and proofs are the hottest read the hub serves.
        """
        if not self.postgres:
            return None
        if self._read_pool is None:
            import asyncpg

            dsn = "postgresql://" + self.url.split("://", 1)[1]
            self._read_pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        return self._read_pool


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
