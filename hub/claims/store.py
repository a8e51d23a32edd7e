"""Reading claims: rows as records, totals, and the events a subscriber is told of.

A claim's status is stored as booked (``active``) or ``released``; ``disputed`` is not
stored but read: an active claim whose document has since been reversed (冲红, a later
version with status ``reversed``) is disputed from the moment that reversal is on the
ledger, in the same transaction, whichever hub process took it.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hub.claims.leaves import ACTIVE, RELEASED, ClaimFields
from hub.store.db import Database

DISPUTED = "disputed"
STATUSES = (ACTIVE, RELEASED, DISPUTED)

_REVERSED = (
    "EXISTS (SELECT 1 FROM documents r WHERE r.issuer = c.issuer AND r.type = c.type"
    " AND r.doc_id = c.doc_id AND r.version > c.version AND r.status = 'reversed')"
)
_COLUMNS = (
    "c.id, c.document_id, c.issuer, c.type, c.doc_id, c.version, c.agency, c.amount,"
    " c.reference, c.status, c.at, c.salt, c.leaf_index, c.released_at, c.release_reason,"
    f" c.release_leaf_index, {_REVERSED}"
)
_STATUS_SQL = {
    ACTIVE: f"c.status = 'active' AND NOT {_REVERSED}",
    DISPUTED: f"c.status = 'active' AND {_REVERSED}",
    RELEASED: "c.status = 'released'",
}


@dataclass(frozen=True)
class ClaimRecord:
    id: str
    document_pk: int
    issuer: str
    type: str
    doc_id: str
    version: int
    agency: str
    amount: str
    reference: str
    stored_status: str
    at: str
    salt: bytes
    leaf_index: int
    released_at: str | None
    release_reason: str | None
    release_leaf_index: int | None
    disputed: bool

    @property
    def status(self) -> str:
        if self.stored_status == RELEASED:
            return RELEASED
        return DISPUTED if self.disputed else ACTIVE

    @property
    def fields(self) -> ClaimFields:
        return ClaimFields(
            self.id,
            self.issuer,
            self.type,
            self.doc_id,
            self.version,
            self.agency,
            self.amount,
            self.reference,
            self.at,
        )


def record_of(r: Sequence[Any]) -> ClaimRecord:
    return ClaimRecord(
        id=r[0],
        document_pk=int(r[1]),
        issuer=r[2],
        type=r[3],
        doc_id=r[4],
        version=int(r[5]),
        agency=r[6],
        amount=r[7],
        reference=r[8],
        stored_status=r[9],
        at=r[10],
        salt=bytes(r[11]),
        leaf_index=int(r[12]),
        released_at=r[13],
        release_reason=r[14],
        release_leaf_index=None if r[15] is None else int(r[15]),
        disputed=bool(r[16]),
    )


SELECT = f"SELECT {_COLUMNS} FROM claims c"


async def claims_on(
    db: Database, issuer: str, doc_type: str, doc_id: str, agency: str | None = None
) -> list[ClaimRecord]:
    """The claims on every version of one document (of one agency), oldest first."""
    query = f"{SELECT} WHERE c.issuer = ? AND c.type = ? AND c.doc_id = ?"
    params: list[Any] = [issuer, doc_type, doc_id]
    if agency is not None:
        query, params = query + " AND c.agency = ?", [*params, agency]
    rows = await db.fetch(query + " ORDER BY c.leaf_index", params)
    return [record_of(r) for r in rows]


def claimed_total(claims: Sequence[ClaimRecord]) -> Decimal:
    """What the active claims among ``claims`` add up to."""
    return sum((Decimal(c.amount) for c in claims if c.status == ACTIVE), Decimal("0.00"))


async def claim_by_id(db: Database, claim_id: str, agency: str) -> ClaimRecord | None:
    rows = await db.fetch(f"{SELECT} WHERE c.id = ? AND c.agency = ?", [claim_id, agency])
    return record_of(rows[0]) if rows else None


def _seen_by(
    agency: str | None, where: tuple[str, list[Any]] | None
) -> tuple[str, list[str], list[Any]]:
    """The join, conditions and parameters that keep the claims ``agency`` made, or those
    on the documents ``where`` selects (a clause on the document, alias ``d``)."""
    parts: list[str] = []
    params: list[Any] = []
    join = ""
    if where is not None:
        join = " JOIN documents d ON d.id = c.document_id"
        parts.append(where[0])
        params.extend(where[1])
    if agency is not None:
        parts.append("c.agency = ?")
        params.append(agency)
    return join, parts, params


async def list_claims(
    db: Database,
    *,
    agency: str | None = None,
    where: tuple[str, list[Any]] | None = None,
    doc_id: str | None = None,
    status: str | None = None,
    limit: int = 500,
) -> list[ClaimRecord]:
    """Claims, oldest first: of ``agency``, or on the documents ``where`` selects (a
    clause on the document, alias ``d``)."""
    join, parts, params = _seen_by(agency, where)
    if doc_id is not None:
        parts.append("c.doc_id = ?")
        params.append(doc_id)
    if status is not None:
        parts.append(_STATUS_SQL[status])
    clause = (" WHERE " + " AND ".join(parts)) if parts else ""
    rows = await db.fetch(f"{SELECT}{join}{clause} ORDER BY c.leaf_index LIMIT ?", [*params, limit])
    return [record_of(r) for r in rows]


@dataclass(frozen=True)
class ClaimEvent:
    """A claim was booked, released or disputed by the leaf at ``leaf_index``."""

    claim: ClaimRecord
    status: str
    leaf_index: int


async def claim_events(
    db: Database,
    after: int,
    upto: int,
    *,
    agency: str | None = None,
    where: tuple[str, list[Any]] | None = None,
) -> list[ClaimEvent]:
    """What happened to the claims ``agency`` (or ``where``) sees by the leaves with index
    in (``after``, ``upto``), in ledger order. A reversal disputes each claim active when
    it was anchored."""
    join, parts, params = _seen_by(agency, where)
    scope = "".join(f" AND {p}" for p in parts)
    booked = await db.fetch(
        f"{SELECT}{join} WHERE c.leaf_index > ? AND c.leaf_index < ?{scope}",
        [after, upto, *params],
    )
    released = await db.fetch(
        f"{SELECT}{join} WHERE c.release_leaf_index > ? AND c.release_leaf_index < ?{scope}",
        [after, upto, *params],
    )
    disputed = await db.fetch(
        f"SELECT {_COLUMNS}, v.leaf_index FROM claims c{join} JOIN documents v"
        " ON v.issuer = c.issuer AND v.type = c.type AND v.doc_id = c.doc_id"
        " AND v.version > c.version AND v.status = 'reversed'"
        " WHERE v.leaf_index > ? AND v.leaf_index < ? AND c.leaf_index < v.leaf_index"
        " AND (c.release_leaf_index IS NULL OR c.release_leaf_index > v.leaf_index)"
        f"{scope}",
        [after, upto, *params],
    )
    events = [ClaimEvent(record_of(r), ACTIVE, int(r[12])) for r in booked]
    events += [ClaimEvent(record_of(r), RELEASED, int(r[15])) for r in released]
    events += [ClaimEvent(record_of(r), DISPUTED, int(r[17])) for r in disputed]
    events.sort(key=lambda e: (e.leaf_index, e.claim.leaf_index))
    return events
