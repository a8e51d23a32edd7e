"""The SQLite writer: a whole write transaction on its thread, all or nothing."""

import asyncio
import sqlite3
from pathlib import Path

import pytest

from hub.store.sql import Sql
from hub.store.sqlite_writer import SqliteWriter

UPSERT = "INSERT INTO t (id, a) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET a = excluded.a"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    file = tmp_path / "w.db"
    with sqlite3.connect(file) as connection:
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT NOT NULL)")
    return file


def _rows(path: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT id, a FROM t ORDER BY id").fetchall()


async def test_many_rows_are_written_in_order_later_rows_winning(path: Path) -> None:
    writer = SqliteWriter(path)
    # More rows than fit in one statement's parameters, and a key repeated at the end.
    rows = [(i, f"v{i}") for i in range(20_000)] + [(7, "last")]

    async def work(sql: Sql) -> int:
        await sql.execute_many(UPSERT, rows)
        return len(await sql.fetch("SELECT id FROM t"))

    assert await writer.run(work) == 20_000
    writer.close()
    stored = dict(_rows(path))
    assert len(stored) == 20_000 and stored[7] == "last" and stored[19_999] == "v19999"


async def test_an_exception_rolls_the_whole_transaction_back(path: Path) -> None:
    writer = SqliteWriter(path)

    async def work(sql: Sql) -> None:
        await sql.execute_many(UPSERT, [(1, "a"), (2, "b")])
        await sql.execute("INSERT INTO t (id, a) VALUES (?, ?)", [3, None])  # NOT NULL

    with pytest.raises(sqlite3.IntegrityError):
        await writer.run(work)

    async def after(sql: Sql) -> None:
        await sql.execute(UPSERT, [4, "d"])

    await writer.run(after)  # the connection is usable again: no transaction left open
    writer.close()
    assert _rows(path) == [(4, "d")]


async def test_work_that_awaits_anything_but_its_sql_is_refused(path: Path) -> None:
    writer = SqliteWriter(path)

    async def work(sql: Sql) -> None:
        await sql.execute(UPSERT, [1, "a"])
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="awaited something other than its Sql"):
        await writer.run(work)
    writer.close()
    assert _rows(path) == []


async def test_a_second_writer_waits_for_the_first_to_commit(path: Path) -> None:
    # Two processes (or a tortoise connection beside the writer) share one SQLite file.
    first, second = SqliteWriter(path), SqliteWriter(path)

    async def read_then_write(sql: Sql) -> None:
        rows = await sql.fetch("SELECT COUNT(*) FROM t")
        await sql.execute(UPSERT, [int(rows[0][0]), "n"])

    await asyncio.gather(*(w.run(read_then_write) for w in (first, second) for _ in range(20)))
    first.close()
    second.close()
    assert [i for i, _ in _rows(path)] == list(range(40))
