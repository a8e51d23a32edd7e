"""The access log: each document body an agency reads is an `access` leaf and a row.

The leaf is appended (and covered by a signed checkpoint) before the body is returned,
so a read that is not on the ledger does not happen.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hub.access.documents import DocRow
from hub.access.grants import timestamp
from hub.documents.canonical import access_leaf_data
from hub.ledger.sequencer import Staged
from hub.store.db import Database, Sql

if TYPE_CHECKING:
    from hub.services import Hub

_INSERT = (
    "INSERT INTO access_events (agency, document_id, purpose, at, leaf_index)"
    " VALUES (?, ?, ?, ?, ?)"
)


@dataclass(frozen=True)
class AccessRecord:
    agency: str
    issuer: str
    type: str
    doc_id: str
    version: int
    purpose: str
    at: str
    leaf_index: int

    @property
    def leaf_data(self) -> bytes:
        return access_leaf_data(
            agency=self.agency,
            issuer=self.issuer,
            type=self.type,
            id=self.doc_id,
            version=self.version,
            purpose=self.purpose,
            at=self.at,
        )


@dataclass(frozen=True)
class _Read:
    """What an access leaf and row need of one read: small, as it may cross to the
    integrating process (hub.store.sqlite_integrator) while the reader waits."""

    document_pk: int
    issuer: str
    type: str
    doc_id: str
    version: int
    purpose: str


@dataclass
class _AccessBatch:
    agency: str
    reads: Sequence[_Read]
    at: str
    indexes: list[int] = field(default_factory=list)

    async def stage(self, sql: Sql, first_index: int, group: dict[str, Any]) -> Staged:
        staged = Staged()
        rows = []
        for read in self.reads:
            index = first_index + len(staged.entries)
            staged.entries.append(
                access_leaf_data(
                    agency=self.agency,
                    issuer=read.issuer,
                    type=read.type,
                    id=read.doc_id,
                    version=read.version,
                    purpose=read.purpose,
                    at=self.at,
                )
            )
            rows.append((self.agency, read.document_pk, read.purpose, self.at, index))
            self.indexes.append(index)
        staged.writes.append((_INSERT, rows))
        return staged

    def outcome(self) -> object:
        return self.indexes

    def absorb(self, outcome: object) -> None:
        assert isinstance(outcome, list)
        self.indexes = outcome


async def record_reads(
    hub: "Hub", agency: str, reads: Sequence[tuple[DocRow, str]], now: datetime | None = None
) -> list[int]:
    """Anchor one `access` leaf per (document, purpose); their leaf indexes, in order."""
    if not reads:
        return []
    batch = _AccessBatch(
        agency,
        [
            _Read(row.pk, row.doc.issuer, row.doc.type, row.doc.id, row.doc.version, purpose)
            for row, purpose in reads
        ],
        timestamp(now or datetime.now(UTC)),
    )
    await hub.sequencer.submit(batch)
    return batch.indexes


async def access_events(
    db: Database,
    *,
    where: tuple[str, list[Any]] | None = None,
    doc_id: str | None = None,
    agency: str | None = None,
    limit: int = 500,
    after: int | None = None,
) -> list[AccessRecord]:
    """Access events, oldest first. ``where`` is a clause on the document (alias ``d``);
    ``after`` a leaf index: only the events anchored after it (a page's cursor)."""
    clause, params = _clause(where, doc_id, agency, after)
    rows = await db.sql.fetch(
        "SELECT a.agency, d.issuer, d.type, d.doc_id, d.version, a.purpose, a.at, a.leaf_index"
        f" FROM access_events a JOIN documents d ON d.id = a.document_id{clause}"
        " ORDER BY a.leaf_index LIMIT ?",
        [*params, limit],
    )
    return [AccessRecord(r[0], r[1], r[2], r[3], int(r[4]), r[5], r[6], int(r[7])) for r in rows]


def _clause(
    where: tuple[str, list[Any]] | None,
    doc_id: str | None,
    agency: str | None,
    after: int | None = None,
) -> tuple[str, list[Any]]:
    parts: list[str] = []
    params: list[Any] = []
    if where is not None:
        parts.append(where[0])
        params.extend(where[1])
    if doc_id is not None:
        parts.append("d.doc_id = ?")
        params.append(doc_id)
    if agency is not None:
        parts.append("a.agency = ?")
        params.append(agency)
    if after is not None:
        parts.append("a.leaf_index > ?")
        params.append(after)
    return ((" WHERE " + " AND ".join(parts)) if parts else ""), params


async def count_access_events(
    db: Database,
    *,
    where: tuple[str, list[Any]] | None = None,
    doc_id: str | None = None,
    agency: str | None = None,
) -> int:
    """How many access events ``access_events`` would list without a limit."""
    clause, params = _clause(where, doc_id, agency)
    rows = await db.sql.fetch(
        f"SELECT COUNT(*) FROM access_events a JOIN documents d ON d.id = a.document_id{clause}",
        params,
    )
    return int(rows[0][0])
