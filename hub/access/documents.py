"""Document reads for the API: pages under a scope, lookups by id, with row keys.

Each function is one query whatever the number of rows, so a page costs a constant
number of queries.
"""

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from hub.access.visibility import Scope
from hub.documents.store import SELECT, DocRow, row_of, with_id
from hub.store.db import Database

__all__ = ["STATUSES", "DocRow", "DocumentFilter", "count", "page", "with_id"]

STATUSES = ("issued", "reversed", "erased")


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
    rows = await db.fetch(
        f"{SELECT} WHERE {clause} ORDER BY leaf_index LIMIT ?", [*params, first + 1]
    )
    return [row_of(r) for r in rows[:first]], len(rows) > first


async def count(db: Database, scope: Scope, flt: DocumentFilter) -> int:
    where = _where(scope, flt)
    if where is None:
        return 0
    rows = await db.sql.fetch(f"SELECT COUNT(*) FROM documents WHERE {where[0]}", where[1])
    return int(rows[0][0])
