"""Database connection: tortoise-orm for the models, a thin SQL layer for the hot paths.

SQL in this project is written once with `?` placeholders and rewritten to `$n` for
PostgreSQL; both dialects share `INSERT ... ON CONFLICT` and the column types we use.
"""

import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from tortoise import Tortoise, connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

MODELS = ["hub.models"]
MIGRATIONS = "hub.migrations"
_PLACEHOLDER = re.compile(r"\?")


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


@lru_cache(maxsize=512)
def _numbered(query: str) -> str:
    count = 0

    def number(_: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"${count}"

    return _PLACEHOLDER.sub(number, query)


class Sql:
    """Raw SQL on one tortoise client (a connection or a transaction)."""

    def __init__(self, client: BaseDBAsyncClient, postgres: bool) -> None:
        self.client = client
        self.postgres = postgres

    def _q(self, query: str) -> str:
        return _numbered(query) if self.postgres else query

    async def fetch(self, query: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        _, rows = await self.client.execute_query(self._q(query), list(params))
        return [tuple(r) if not isinstance(r, tuple) else r for r in rows]  # type: ignore[arg-type]

    async def execute(self, query: str, params: Sequence[Any] = ()) -> None:
        await self.client.execute_query(self._q(query), list(params))

    async def execute_many(self, query: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self.client.execute_many(self._q(query), [list(r) for r in rows])


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = url.startswith(("postgres://", "postgresql://", "asyncpg://"))
        self._reader: sqlite3.Connection | None = None

    async def open(self) -> None:
        path = sqlite_path(self.url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        await Tortoise.init(config=tortoise_config(self.url))

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        await connections.close_all()

    @property
    def sql(self) -> Sql:
        return Sql(connections.get("default"), self.postgres)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Sql]:
        async with in_transaction("default") as tx:
            yield Sql(tx, self.postgres)

    def sqlite_reader(self) -> sqlite3.Connection | None:
        """A read-only synchronous SQLite connection for point reads on the event loop.

        A primary-key read from SQLite's page cache takes ~15 µs; the aiosqlite thread hop
        costs ~200 µs, more than the read itself, so proofs read through this instead.
        """
        path = sqlite_path(self.url)
        if path is None:
            return None
        if self._reader is None:
            self._reader = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, check_same_thread=False
            )
        return self._reader


async def migrate(url: str) -> None:
    """Apply tortoise's migrations (`hub migrate`; `hub serve` runs it on start)."""
    from tortoise.migrations.api import migrate as run_migrations

    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    await run_migrations(config=tortoise_config(url))
    await connections.close_all()


# For `make migrations` (tortoise makemigrations compares the models with the migrations).
MIGRATIONS_CONFIG = tortoise_config("sqlite://var/makemigrations.db")
