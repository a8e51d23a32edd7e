"""Which driver faults are outages (UNAVAILABLE) and which are not: a bug or a refusal
must never hide as "try again later"."""

import errno
import pickle
import sqlite3

import asyncpg.exceptions as pg
import pytest
from tortoise.exceptions import IntegrityError, OperationalError

from hub.errors import Unavailable
from hub.outages import outage


def _sqlite_error(sql: str, setup: str = "") -> sqlite3.Error:
    conn = sqlite3.connect(":memory:")
    try:
        if setup:
            conn.executescript(setup)
        conn.execute(sql)
    except sqlite3.Error as exc:
        return exc
    finally:
        conn.close()
    raise AssertionError("no error")


@pytest.mark.parametrize(
    "exc",
    [
        pg.DiskFullError("could not extend file"),
        pg.AdminShutdownError("terminating connection due to administrator command"),
        pg.CannotConnectNowError("the database system is starting up"),
        pg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        pg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),
        pg.InterfaceError("cannot call Connection.fetch(): connection is closed"),
        ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed"),
        OSError(errno.ENOSPC, "No space left on device"),
        # A SQLite error that came back pickled from the integrator process keeps its text.
        pickle.loads(pickle.dumps(sqlite3.OperationalError("database or disk is full"))),
        OperationalError(sqlite3.OperationalError("disk I/O error")),  # wrapped by tortoise
    ],
    ids=type,
)
def test_outages_are_unavailable_with_a_cause(exc: Exception) -> None:
    found = outage(exc)
    assert isinstance(found, Unavailable) and found.code == "UNAVAILABLE"
    assert found.retry_after > 0 and "try again" in found.message
    assert type(exc).__name__ in found.cause or "OperationalError" in type(exc).__name__


def test_a_cause_names_the_fault_not_the_data() -> None:
    exc = pg.DiskFullError('could not extend file "base/1/2" for row (P-000007, 460123)')
    found = outage(exc)
    assert found is not None and "53100" in found.cause and "P-000007" not in found.cause


@pytest.mark.parametrize(
    "exc",
    [
        pg.UniqueViolationError("duplicate key value violates unique constraint"),
        pg.SerializationError("could not serialize access"),
        pg.InterfaceError("cannot perform operation: another operation is in progress"),
        IntegrityError(sqlite3.IntegrityError("UNIQUE constraint failed: documents.id")),
        ValueError("Invalid file descriptor: -1"),
        RuntimeError("a SQLite write transaction awaited something other than its Sql"),
        KeyError("x"),
    ],
    ids=type,
)
def test_bugs_and_refusals_are_not_outages(exc: Exception) -> None:
    assert outage(exc) is None


def test_real_sqlite_errors_are_told_apart() -> None:
    assert outage(_sqlite_error("SELEC 1")) is None
    assert outage(_sqlite_error("INSERT INTO t VALUES (1, 1)", "CREATE TABLE t (a)")) is None
    # A database that may not grow is full, as SQLite reports a full disk (SQLITE_FULL).
    full = _sqlite_error(
        "INSERT INTO t SELECT randomblob(4000) FROM t, t AS u, t AS v",
        "CREATE TABLE t (a); PRAGMA max_page_count = 8;"
        " INSERT INTO t VALUES (randomblob(100)), (randomblob(100)), (randomblob(100));",
    )
    found = outage(full)
    assert found is not None and found.cause.startswith("SQLite: database or disk is full")
