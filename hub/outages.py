"""What a database driver's exception amounts to: an outage (`Unavailable`) or not.

The one place where driver faults become the hub's answer (DESIGN.md, "Errors"): a down,
restarting or full database is UNAVAILABLE (HTTP 503, Retry-After), never INTERNAL. The
GraphQL layer and the HTTP routes both ask `outage` and map its answer; the drivers'
exceptions themselves stay as they are.
"""

import errno
import sqlite3

from hub.errors import Unavailable

__all__ = ["outage"]

# SQLSTATE classes and codes of a server that cannot do the work now but may soon: lost or
# refused connections (08), disk full or out of memory (53), shutting down, crashed or
# starting up (57P01-03), I/O errors (58), and a standby's read-only session after a
# failover (25006). Everything else (constraint, syntax) is an answer or a bug.
_PG_OUTAGE_CLASSES = ("08", "53", "58")
_PG_OUTAGE_CODES = {
    "57P01": "shutting down",
    "57P02": "crashed",
    "57P03": "starting up",
    "25006": "read-only (a standby)",
}
_PG_CLASS_NAMES = {
    "08": "connection lost",
    "53": "out of resources (disk or memory)",
    "58": "I/O error",
}
# SQLite's primary result codes (sqlite3_errstr texts, which survive pickling from the
# integrator process when the code does not): busy, locked, out of memory, read-only,
# I/O error, disk full, cannot open.
_SQLITE_OUTAGES = {
    5: "database is locked",
    6: "database table is locked",
    7: "out of memory",
    8: "attempt to write a readonly database",
    10: "disk I/O error",
    13: "database or disk is full",
    14: "unable to open database file",
}
_OUTAGE_MESSAGE = "the database is unavailable; nothing was changed, try again shortly"


def outage(exc: BaseException) -> Unavailable | None:
    """The `Unavailable` an exception from a database driver amounts to, or None.

    The one place where driver faults become the hub's answer (DESIGN.md, "Errors"): a
    down, restarting or full database is UNAVAILABLE, never INTERNAL. Follows the chain of
    causes, since tortoise wraps driver errors. The cause names the fault by type and
    code only: driver messages may quote a row's values.
    """
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, Unavailable):
            return current
        cause = _outage_cause(current)
        if cause is not None:
            return Unavailable(_OUTAGE_MESSAGE, f"{cause} ({type(current).__name__})")
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        todo.extend(a for a in current.args if isinstance(a, BaseException))
    return None


def _outage_cause(exc: BaseException) -> str | None:
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and len(sqlstate) == 5:
        if sqlstate in _PG_OUTAGE_CODES:
            return f"PostgreSQL {_PG_OUTAGE_CODES[sqlstate]}, SQLSTATE {sqlstate}"
        if sqlstate[:2] in _PG_OUTAGE_CLASSES:
            return f"PostgreSQL {_PG_CLASS_NAMES[sqlstate[:2]]}, SQLSTATE {sqlstate}"
        return None
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in _SQLITE_OUTAGES:
            return f"SQLite: {_SQLITE_OUTAGES[code & 0xFF]}"
        text = str(exc.args[0]) if exc.args else ""
        return next((f"SQLite: {t}" for t in _SQLITE_OUTAGES.values() if text == t), None)
    if type(exc).__module__.startswith("asyncpg"):
        if type(exc).__name__ == "InternalClientError":
            # A pooled connection whose session the server ended in the middle of an
            # operation (a restart) is left in a state asyncpg cannot leave
            # (MagicStack/asyncpg#1069); its pool replaces it on release.
            return "PostgreSQL connection broken by the server ending its session"
        if type(exc).__name__ == "InterfaceError":
            # Only a closed connection or pool: asyncpg's other interface errors are misuse.
            text = str(exc)
            return next((f"PostgreSQL {t}" for t in _ASYNCPG_GONE if t in text), None)
    if isinstance(exc, OSError) and (
        isinstance(exc, ConnectionError | TimeoutError) or exc.errno in _OS_OUTAGES
    ):
        return f"{_OS_OUTAGES.get(exc.errno or 0, 'connection failed')}, errno {exc.errno}"
    return None


# asyncpg's client-side errors of a connection or pool that went away under a query.
_ASYNCPG_GONE = ("connection is closed", "pool is closed", "pool is closing")
_OS_OUTAGES = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EIO: "I/O error",
    errno.EROFS: "read-only file system",
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "timed out",
}
