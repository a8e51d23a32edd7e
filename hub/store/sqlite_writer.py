"""SQLite write transactions run whole on one thread: one hop from the event loop and back.

Through tortoise each statement of a transaction is its own hop to aiosqlite's thread and
back, and under load every hop also waits for the busy event loop; the ledger's integrating
transaction holds SQLite's only write lock across all of them. Here the transaction's
coroutine is driven to completion on the writer's thread instead, its `Sql` calls running
synchronously on the writer's own connection, so the lock is held only for the work itself.
"""

import asyncio
import re
import sqlite3
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from hub.store.sql import Sql

T = TypeVar("T")
# SQLite's default bound-parameter limit since 3.32 is 32,766; stay well inside it.
MAX_PARAMETERS = 16_000
# The one row of an `INSERT ... VALUES (?, ..., ?)`, which can be repeated for many rows.
_VALUES = re.compile(r"\bVALUES\s*(\((?:\s*\?\s*,)*\s*\?\s*\))", re.IGNORECASE)
# As the tortoise connection's (hub.db): a second process waits for the write lock.
BUSY_TIMEOUT_S = 30.0


class SqliteSql(Sql):
    """Sql on a synchronous sqlite3 connection: its coroutines never suspend."""

    postgres = False

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    async def fetch(self, query: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        return self.connection.execute(query, list(params)).fetchall()

    async def execute(self, query: str, params: Sequence[Any] = ()) -> None:
        self.connection.execute(query, list(params))

    async def execute_many(self, query: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        values = _VALUES.search(query)
        if values is None or len(rows) == 1:
            self.connection.executemany(query, rows)
            return
        # sqlite3 lets go of the GIL around each row's step and must win it back from the
        # busy event loop each time; one statement of many rows asks for it once.
        width = values.group(1).count("?")
        per_statement = max(1, MAX_PARAMETERS // width)
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            statement = _multi_row(query, values, len(chunk))
            self.connection.execute(statement, [v for row in chunk for v in row])


def _multi_row(query: str, values: re.Match[str], count: int) -> str:
    return query[: values.start(1)] + ",".join([values.group(1)] * count) + query[values.end(1) :]


def run_to_completion(coroutine: Coroutine[Any, Any, T]) -> T:
    """Drive a coroutine that never suspends; raise if it tries to."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise RuntimeError("a SQLite write transaction awaited something other than its Sql")


def connect_writer(path: Path) -> sqlite3.Connection:
    """A connection for write transactions, used by one thread at a time."""
    connection = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    # The pragmas tortoise sets on its connection (journal_mode persists in the file).
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


def run_transaction(connection: sqlite3.Connection, work: Callable[[Sql], Awaitable[T]]) -> T:
    """`work(sql)` in one transaction (BEGIN IMMEDIATE ... COMMIT) on ``connection``.

    `work` must await nothing but `sql`; an exception it raises rolls the transaction back.
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        coroutine = work(SqliteSql(connection))
        if not isinstance(coroutine, Coroutine):
            raise TypeError("work must be a coroutine function")
        result = run_to_completion(coroutine)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return result


class SqliteWriter:
    """One write connection to a SQLite file, used by one thread, one transaction at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-sqlite-writer")
        self._connection: sqlite3.Connection | None = None

    async def run(self, work: Callable[[Sql], Awaitable[T]]) -> T:
        """`work(sql)` in one transaction (BEGIN IMMEDIATE ... COMMIT) on the writer's thread.

        `work` must await nothing but `sql`; an exception it raises rolls the transaction back.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._transaction, work)

    def _transaction(self, work: Callable[[Sql], Awaitable[T]]) -> T:
        if self._connection is None:
            self._connection = connect_writer(self.path)
        return run_transaction(self._connection, work)

    def close(self) -> None:
        """Wait for the transaction in flight, if any, then close the connection."""
        self._executor.shutdown(wait=True)
        if self._connection is not None:
            self._connection.close()
            self._connection = None
