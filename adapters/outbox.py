"""The adapter's durable outbox: accept, store, then deliver to the hub.

One SQLite file (stdlib sqlite3, WAL, ``synchronous=FULL``), local to the hospital.
``enqueue`` returns only after its transaction is on disk, so an HL7 AA or an HTTP 2xx
sent after it survives a crash. Delivery's bookkeeping (attempts, delivered and dead
marks, the status line) is committed without waiting for the disk: what a power cut
takes back is sent again, and the hub answers DUPLICATE. Items are delivered in the
order they were accepted, which keeps a correction behind the version it supersedes.

Dead letters are of two kinds: documents the hub REJECTED (kept whole, so an operator
can requeue them once the cause is fixed) and messages refused at the door (HL7 AE/AR,
bad FHIR or CSV input), kept as key, code and reason. The raw message, which holds
patient data, is kept only in this file (column ``raw``) for the operator to fix and
resend; ``dead_letters()`` and ``hub adapter status`` never show it.

Methods are blocking; async callers run them with ``asyncio.to_thread``. One connection
serves every thread under a lock; other processes (``hub adapter status`` while the
listener runs) share the file through WAL.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from hub.documents.canonical import canonical_json

__all__ = [
    "BUSY_TIMEOUT",
    "INTAKE_BUSY_TIMEOUT",
    "Counts",
    "DeadLetter",
    "DeliveryState",
    "Enqueued",
    "NewDocument",
    "Outbox",
    "QueuedDocument",
    "document_key",
]

T = TypeVar("T")
# How long a write waits for another process holding the file (``hub adapter status``
# reads without blocking, thanks to WAL; a writer elsewhere may hold it briefly).
BUSY_TIMEOUT = 30.0
# The same on the intake path, where a sender waits for its ACK: better a quick AR 207
# ("send again") than a minute's silence while something holds the file.
INTAKE_BUSY_TIMEOUT = 2.0
_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    content_digest TEXT NOT NULL,
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    issued_at TEXT,
    supersedes INTEGER,
    source TEXT NOT NULL,
    raw BLOB,
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'delivered', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    accepted_at TEXT NOT NULL,
    finished_at TEXT,
    result TEXT,
    leaf_index INTEGER,
    error_code TEXT,
    error_message TEXT
);
CREATE INDEX IF NOT EXISTS documents_queued ON documents (seq) WHERE state = 'queued';
CREATE TABLE IF NOT EXISTS refusals (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    source TEXT NOT NULL,
    code TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw BLOB,
    times INTEGER NOT NULL DEFAULT 1,
    first_at TEXT NOT NULL,
    last_at TEXT NOT NULL,
    resolved_at TEXT
);
CREATE INDEX IF NOT EXISTS refusals_key ON refusals (key);
CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class NewDocument:
    """A document to deliver. ``key`` makes enqueueing idempotent: an HL7 sender and
    MSH-10, or document_key() for sources without message ids."""

    key: str
    type: str
    id: str
    body: dict[str, Any]
    source: str
    issued_at: str | None = None
    supersedes: int | None = None
    raw: bytes | None = None


@dataclass(frozen=True, slots=True)
class Enqueued:
    """``new``: stored now; ``duplicate``: the same key and content were already stored;
    ``conflict``: the key was already used for different content (nothing stored)."""

    seq: int
    status: Literal["new", "duplicate", "conflict"]


@dataclass(frozen=True, slots=True)
class QueuedDocument:
    seq: int
    key: str
    type: str
    id: str
    # The body's RFC 8785 bytes: what is signed, and what the hub will canonicalise to.
    body: bytes
    issued_at: str | None
    supersedes: int | None
    attempts: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """``rejected``: the hub refused the document; ``refused``: refused at the door."""

    kind: Literal["rejected", "refused"]
    seq: int
    key: str
    document_id: str | None
    source: str
    code: str
    reason: str
    at: str
    times: int = 1


@dataclass(frozen=True, slots=True)
class Counts:
    queued: int
    delivered: int
    rejected: int
    refused: int

    @property
    def dead(self) -> int:
        """Every dead letter: rejected by the hub plus refused at the door."""
        return self.rejected + self.refused


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """The last delivery attempt, for ``hub adapter status``."""

    kind: str  # ok | unavailable | auth | protocol | idle
    message: str
    at: str
    failures: int = 0
    last_success_at: str | None = None


def document_key(type: str, id: str, body: dict[str, Any], supersedes: int | None = None) -> str:
    """The idempotency key of a document from a source without message ids.

    A version that supersedes another gets its own key: a correction may carry a body
    sent before as a first version."""
    digest = hashlib.sha256(canonical_json(body)).hexdigest()
    key = f"doc:{type}:{id}:{digest}"
    return key if supersedes is None else f"{key}:supersedes:{supersedes}"


class Outbox:
    """The outbox in ``path`` (created with its directory if missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # The thread inside try_now, which holds _lock already.
        self._owner: int | None = None
        self._db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT
        )
        self._db.execute("PRAGMA journal_mode = WAL")
        # FULL: a commit is on disk (WAL fsynced) before enqueue returns.
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute(f"PRAGMA busy_timeout = {_milliseconds(BUSY_TIMEOUT)}")
        with self._transaction():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                raise RuntimeError(
                    f"outbox {self.path} has schema {version}, newer than this adapter's"
                )
            # executescript would commit mid-transaction; run the statements one by one.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transaction(
        self, *, durable: bool = True, busy_timeout: float | None = None
    ) -> _Transaction:
        if self._owner == threading.get_ident():  # inside try_now: held, and never wait
            return _Transaction(self._db, None, durable, 0.0)
        return _Transaction(self._db, self._lock, durable, busy_timeout)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self._owner == threading.get_ident():
            yield
            return
        with self._lock:
            yield

    def try_now(self, call: Callable[[], T]) -> tuple[bool, T | None]:
        """``(True, call())`` if nothing else holds the outbox, for ``call`` made of this
        outbox's methods; ``(False, None)`` at once, nothing done, if another thread of
        this process or another process holds it (then call it in a thread).

        The event loop calls the outbox through this: a call takes about a millisecond,
        while a hop to a thread and back waits for the busy loop and the GIL."""
        if not self._lock.acquire(blocking=False):
            return False, None
        self._owner = threading.get_ident()
        try:
            return True, call()
        except sqlite3.OperationalError as error:
            if getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY:
                return False, None
            raise
        finally:
            self._owner = None
            self._lock.release()

    # ------------------------------------------------------------------ accepting

    def enqueue(
        self, items: Sequence[NewDocument], *, busy_timeout: float | None = None
    ) -> list[Enqueued]:
        """Store ``items`` in one durable transaction; one result per item, in order.

        ``busy_timeout``: seconds to wait for another process's write lock (default
        BUSY_TIMEOUT); then sqlite3.OperationalError, with nothing stored."""
        now = _now()
        prepared = [(item, _content(item)) for item in items]
        results = []
        with self._transaction(busy_timeout=busy_timeout) as db:
            for item, (body, digest) in prepared:
                row = db.execute(
                    "SELECT seq, content_digest FROM documents WHERE key = ?", (item.key,)
                ).fetchone()
                if row is not None:
                    status: Literal["duplicate", "conflict"] = (
                        "duplicate" if row[1] == digest else "conflict"
                    )
                    results.append(Enqueued(row[0], status))
                    continue
                cursor = db.execute(
                    "INSERT INTO documents (key, content_digest, type, id, body, issued_at,"
                    " supersedes, source, raw, accepted_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        item.key,
                        digest,
                        item.type,
                        item.id,
                        body,
                        item.issued_at,
                        item.supersedes,
                        item.source,
                        item.raw,
                        now,
                    ),
                )
                # A message refused earlier and now sent again in good order is settled.
                db.execute(
                    "UPDATE refusals SET resolved_at = ? WHERE key = ? AND resolved_at IS NULL",
                    (now, item.key),
                )
                assert cursor.lastrowid is not None
                results.append(Enqueued(cursor.lastrowid, "new"))
        return results

    def refuse(
        self,
        *,
        key: str,
        source: str,
        code: str,
        reason: str,
        raw: bytes | None = None,
        busy_timeout: float | None = None,
    ) -> int:
        """Record a message refused at the door. A repeat of an open refusal of the same
        key and reason is counted on it rather than listed again."""
        now = _now()
        with self._transaction(busy_timeout=busy_timeout) as db:
            row = None
            if key:
                row = db.execute(
                    "SELECT seq FROM refusals WHERE key = ? AND reason = ? AND code = ?"
                    " AND resolved_at IS NULL",
                    (key, reason, code),
                ).fetchone()
            if row is not None:
                db.execute(
                    "UPDATE refusals SET times = times + 1, last_at = ? WHERE seq = ?",
                    (now, row[0]),
                )
                return int(row[0])
            cursor = db.execute(
                "INSERT INTO refusals (key, source, code, reason, raw, first_at, last_at)"
                " VALUES (?,?,?,?,?,?,?)",
                (key, source, code, reason, raw, now, now),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    # ------------------------------------------------------------------ delivering

    def next_batch(self, limit: int) -> list[QueuedDocument]:
        """The oldest ``limit`` queued documents, oldest first."""
        with self._locked():
            rows = self._db.execute(
                "SELECT seq, key, type, id, body, issued_at, supersedes, attempts"
                " FROM documents WHERE state = 'queued' ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            QueuedDocument(
                seq=row[0],
                key=row[1],
                type=row[2],
                id=row[3],
                body=row[4].encode("utf-8"),
                issued_at=row[5],
                supersedes=row[6],
                attempts=row[7],
            )
            for row in rows
        ]

    def record_attempt(self, seqs: Iterable[int]) -> None:
        with self._transaction(durable=False) as db:
            for chunk in _chunks(list(seqs)):
                db.execute(
                    "UPDATE documents SET attempts = attempts + 1"
                    f" WHERE seq IN ({','.join('?' * len(chunk))})",
                    chunk,
                )

    def mark_delivered(self, delivered: Iterable[tuple[int, str, int | None]]) -> None:
        """``(seq, CREATED | DUPLICATE, leaf index)`` per delivered document."""
        now = _now()
        with self._transaction(durable=False) as db:
            for chunk in _chunks(list(delivered)):
                db.execute(
                    "UPDATE documents SET state = 'delivered', finished_at = ?,"
                    " result = v.column2, leaf_index = v.column3,"
                    " error_code = NULL, error_message = NULL"
                    f" FROM (VALUES {','.join(['(?, ?, ?)'] * len(chunk))}) AS v"
                    " WHERE documents.seq = v.column1 AND documents.state = 'queued'",
                    [now, *(value for row in chunk for value in row)],
                )

    def mark_dead(self, dead: Iterable[tuple[int, str, str]]) -> None:
        """``(seq, error code, message)`` per document the hub rejected."""
        now = _now()
        with self._transaction(durable=False) as db:
            db.executemany(
                "UPDATE documents SET state = 'dead', finished_at = ?, result = 'REJECTED',"
                " error_code = ?, error_message = ? WHERE seq = ? AND state = 'queued'",
                [(now, code, message, seq) for seq, code, message in dead],
            )

    def requeue(self, seqs: Iterable[int] | None = None) -> int:
        """Put rejected documents (all of them when ``seqs`` is None) back in the queue."""
        with self._transaction() as db:
            if seqs is None:
                cursor = db.execute(
                    "UPDATE documents SET state = 'queued', finished_at = NULL WHERE state = 'dead'"
                )
                return cursor.rowcount
            total = 0
            for seq in seqs:
                total += db.execute(
                    "UPDATE documents SET state = 'queued', finished_at = NULL"
                    " WHERE seq = ? AND state = 'dead'",
                    (seq,),
                ).rowcount
            return total

    # ------------------------------------------------------------------ reporting

    def counts(self) -> Counts:
        with self._locked():
            by_state = dict(
                self._db.execute("SELECT state, count(*) FROM documents GROUP BY state").fetchall()
            )
            refused = self._db.execute(
                "SELECT count(*) FROM refusals WHERE resolved_at IS NULL"
            ).fetchone()[0]
        return Counts(
            queued=by_state.get("queued", 0),
            delivered=by_state.get("delivered", 0),
            rejected=by_state.get("dead", 0),
            refused=refused,
        )

    def oldest_queued_at(self) -> str | None:
        """When the oldest document still queued was accepted (ISO 8601), or None."""
        with self._locked():
            row = self._db.execute(
                "SELECT accepted_at FROM documents WHERE state = 'queued' ORDER BY seq LIMIT 1"
            ).fetchone()
        return None if row is None else str(row[0])

    def dead_letters(self, limit: int = 1000) -> list[DeadLetter]:
        """Open dead letters, newest first: rejected documents and refused messages."""
        with self._locked():
            rejected = self._db.execute(
                "SELECT seq, key, id, source, error_code, error_message, finished_at"
                " FROM documents WHERE state = 'dead' ORDER BY seq DESC LIMIT ?",
                (limit,),
            ).fetchall()
            refused = self._db.execute(
                "SELECT seq, key, source, code, reason, last_at, times FROM refusals"
                " WHERE resolved_at IS NULL ORDER BY seq DESC LIMIT ?",
                (limit,),
            ).fetchall()
        letters = [
            DeadLetter(
                "rejected", row[0], row[1], row[2], row[3], row[4] or "", row[5] or "", row[6]
            )
            for row in rejected
        ] + [
            DeadLetter("refused", row[0], row[1], None, row[2], row[3], row[4], row[5], row[6])
            for row in refused
        ]
        letters.sort(key=lambda letter: letter.at, reverse=True)
        return letters[:limit]

    def document(self, key: str) -> dict[str, Any] | None:
        """State of the document stored under ``key`` (no body), or None."""
        with self._locked():
            row = self._db.execute(
                "SELECT seq, id, state, result, leaf_index, error_code, error_message, attempts"
                " FROM documents WHERE key = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        names = ("seq", "id", "state", "result", "leafIndex", "errorCode", "errorMessage")
        return {**dict(zip(names, row[:7], strict=True)), "attempts": row[7]}

    def state_of(self, seq: int) -> dict[str, Any] | None:
        """State of the document with outbox number ``seq`` (no body), or None."""
        with self._locked():
            row = self._db.execute("SELECT key FROM documents WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else self.document(str(row[0]))

    def set_delivery_state(self, state: DeliveryState) -> None:
        value = json.dumps(
            {
                "kind": state.kind,
                "message": state.message,
                "at": state.at,
                "failures": state.failures,
                "lastSuccessAt": state.last_success_at,
            }
        )
        with self._transaction(durable=False) as db:
            db.execute(
                "INSERT INTO state (name, value) VALUES ('delivery', ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (value,),
            )

    def delivery_state(self) -> DeliveryState | None:
        with self._locked():
            row = self._db.execute("SELECT value FROM state WHERE name = 'delivery'").fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        return DeliveryState(
            kind=data["kind"],
            message=data["message"],
            at=data["at"],
            failures=data["failures"],
            last_success_at=data["lastSuccessAt"],
        )


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` under the connection lock; rollback on error.

    Not ``durable``: committed without waiting for the disk (``synchronous=NORMAL``; WAL
    keeps it atomic and ordered, the next durable commit flushes it too). ``busy_timeout``
    replaces BUSY_TIMEOUT for this transaction."""

    def __init__(
        self,
        db: sqlite3.Connection,
        lock: threading.Lock | None,  # None: the caller holds it
        durable: bool,
        busy_timeout: float | None = None,
    ) -> None:
        self._db = db
        self._lock = lock
        self._durable = durable
        self._busy_timeout = busy_timeout

    def __enter__(self) -> sqlite3.Connection:
        if self._lock is not None:
            self._lock.acquire()
        try:
            if not self._durable:
                self._db.execute("PRAGMA synchronous = NORMAL")
            if self._busy_timeout is not None:
                self._db.execute(f"PRAGMA busy_timeout = {_milliseconds(self._busy_timeout)}")
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._restore()
            if self._lock is not None:
                self._lock.release()
            raise
        return self._db

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        try:
            self._db.execute("COMMIT" if kind is None else "ROLLBACK")
        finally:
            self._restore()
            if self._lock is not None:
                self._lock.release()

    def _restore(self) -> None:
        if not self._durable:
            self._db.execute("PRAGMA synchronous = FULL")
        if self._busy_timeout is not None:
            self._db.execute(f"PRAGMA busy_timeout = {_milliseconds(BUSY_TIMEOUT)}")


# Rows a statement takes at once: the delivery thread holds the outbox lock while it
# writes, and executemany would let go of the GIL, and wait to win it back from the busy
# event loop, once per row.
_ROWS_PER_STATEMENT = 300


def _chunks(rows: list[T]) -> list[list[T]]:
    return [rows[i : i + _ROWS_PER_STATEMENT] for i in range(0, len(rows), _ROWS_PER_STATEMENT)]


def _content(item: NewDocument) -> tuple[str, str]:
    """The canonical body, and the digest of the canonical {type, id, body, supersedes}.

    That object's JCS form is its members in key order (body, id, supersedes, type), so it
    is written around the body's canonical bytes instead of canonicalising the body twice.
    """
    body = canonical_json(item.body)
    content = [b'{"body":', body, b',"id":', canonical_json(item.id, path="id")]
    if item.supersedes is not None:
        content += [b',"supersedes":', canonical_json(item.supersedes, path="supersedes")]
    content += [b',"type":', canonical_json(item.type, path="type"), b"}"]
    return body.decode("utf-8"), hashlib.sha256(b"".join(content)).hexdigest()


def _milliseconds(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
