"""Document reads for the API: pages under a scope, lookups by id, with row keys.

Each function is one query whatever the number of rows, so a page costs a constant
number of queries.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from hub.access.reads import fetch
from hub.access.visibility import Scope
from hub.documents.service import StoredDocument
from hub.store.db import Database

_SELECT = (
    "SELECT id, issuer, type, doc_id, version, status, subject, body, salt, digest,"
    " issued_at, leaf_index, erased_at FROM documents"
)
STATUSES = ("issued", "reversed", "erased")


@dataclass(frozen=True)
class DocRow:
    """A stored document version and its row key (access events refer to it)."""

    pk: int
    doc: StoredDocument


@dataclass(frozen=True)
class DocumentFilter:
    """``issued_from``/``issued_to`` are dates, inclusive, compared with the issuer's local
    date as written in ``issuedAt``."""

    type: str | None = None
    issuer: str | None = None
    status: str | None = None
    issued_from: date | None = None
    issued_to: date | None = None

    def sql(self, in_leaf_order: bool = False) -> tuple[list[str], list[Any]]:
        """``in_leaf_order``: as Rule.sql, keep type and issuer indexes out of a page's plan."""
        parts: list[str] = []
        params: list[Any] = []
        hide = "|| ''" if in_leaf_order else ""
        if self.type is not None:
            parts.append(f"(type{hide}) = ?")
            params.append(self.type)
        if self.issuer is not None:
            parts.append(f"(issuer{hide}) = ?")
            params.append(self.issuer)
        if self.status == "erased":
            parts.append("erased_at IS NOT NULL")
        elif self.status is not None:
            parts.append("status = ? AND erased_at IS NULL")
            params.append(self.status)
        if self.issued_from is not None:
            parts.append("issued_at >= ?")
            params.append(self.issued_from.isoformat())
        if self.issued_to is not None:
            parts.append("issued_at < ?")
            params.append((self.issued_to + timedelta(days=1)).isoformat())
        return parts, params


def _row(r: Sequence[Any]) -> DocRow:
    pk, issuer, typ, doc_id, version, status, subject, body, salt, digest, at, index, erased = r
    return DocRow(
        int(pk),
        StoredDocument(
            issuer=issuer,
            type=typ,
            id=doc_id,
            version=int(version),
            status="erased" if erased is not None else status,
            subject=subject,
            body_text=body,
            salt=bytes(salt) if salt is not None else None,
            digest=bytes(digest),
            issued_at=at,
            leaf_index=int(index),
            erased=erased is not None,
        ),
    )


def _where(
    scope: Scope, flt: DocumentFilter, in_leaf_order: bool = False
) -> tuple[str, list[Any]] | None:
    visible = scope.sql(in_leaf_order=in_leaf_order)
    if visible is None:
        return None
    parts, params = flt.sql(in_leaf_order)
    return " AND ".join([visible[0], *parts]), [*visible[1], *params]


async def page(
    db: Database, scope: Scope, flt: DocumentFilter, after: int | None, first: int
) -> tuple[list[DocRow], bool]:
    """Up to ``first`` visible documents after leaf index ``after``, oldest first, and
    whether more follow."""
    where = _where(scope, flt, in_leaf_order=True)
    if where is None:
        return [], False
    clause, params = where
    if after is not None:
        clause, params = f"{clause} AND leaf_index > ?", [*params, after]
    rows = await fetch(
        db, f"{_SELECT} WHERE {clause} ORDER BY leaf_index LIMIT ?", [*params, first + 1]
    )
    return [_row(r) for r in rows[:first]], len(rows) > first


async def count(db: Database, scope: Scope, flt: DocumentFilter) -> int:
    where = _where(scope, flt)
    if where is None:
        return 0
    rows = await db.sql.fetch(f"SELECT COUNT(*) FROM documents WHERE {where[0]}", where[1])
    return int(rows[0][0])


# The stored document types, one index seek each (a loose index scan): with them a lookup
# by id alone can use the (type, doc_id) index instead of scanning the whole table.
_TYPES = (
    "WITH RECURSIVE t(type) AS (SELECT MIN(type) FROM documents UNION ALL"
    " SELECT (SELECT MIN(type) FROM documents WHERE type > t.type) FROM t"
    " WHERE t.type IS NOT NULL) SELECT type FROM t WHERE type IS NOT NULL"
)


async def with_id(db: Database, doc_id: str, doc_type: str | None = None) -> list[DocRow]:
    """Every version of every document called ``doc_id`` (any issuer), oldest first."""
    if doc_type is None:
        query, params = f"{_SELECT} WHERE type IN ({_TYPES}) AND doc_id = ?", [doc_id]
    else:
        query, params = f"{_SELECT} WHERE type = ? AND doc_id = ?", [doc_type, doc_id]
    rows = await fetch(db, f"{query} ORDER BY issuer, type, version", params)
    return [_row(r) for r in rows]
