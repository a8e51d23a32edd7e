"""The document store's read side: the one SELECT of stored versions and its row mapping.

Every reader of the `documents` table (intake's duplicate checks aside, which read only
what identity needs) goes through `SELECT` and `row_of`, so a column is added in one place.
Reads run off the writer's connection (`Database.fetch`, hub.store.reader).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import orjson

from hub.documents.canonical import document_leaf_data
from hub.errors import NotFound
from hub.store.db import Database, Sql

__all__ = [
    "SELECT",
    "DocRow",
    "StoredDocument",
    "document_at",
    "document_versions",
    "erase_document",
    "row_of",
    "with_id",
]


@dataclass(frozen=True)
class StoredDocument:
    issuer: str
    type: str
    id: str
    version: int
    status: str
    subject: str | None
    body_text: str | None
    salt: bytes | None
    digest: bytes
    issued_at: str
    leaf_index: int
    erased: bool
    type_version: int = 1

    @cached_property
    def body(self) -> dict[str, Any] | None:
        """The body, parsed when first asked for: most reads (proofs, pages without the
        body) never look at it."""
        if self.body_text is None:
            return None
        parsed: dict[str, Any] = orjson.loads(self.body_text)
        return parsed

    @property
    def leaf_data(self) -> bytes:
        return document_leaf_data(
            issuer=self.issuer,
            type=self.type,
            id=self.id,
            version=self.version,
            digest=self.digest,
            issued_at=self.issued_at,
        )


@dataclass(frozen=True)
class DocRow:
    """A stored document version and its row key (access events refer to it)."""

    pk: int
    doc: StoredDocument


SELECT = (
    "SELECT id, issuer, type, doc_id, version, status, subject, body, salt, digest,"
    " issued_at, leaf_index, erased_at, type_version FROM documents"
)


def row_of(r: Sequence[Any]) -> DocRow:
    """A row of `SELECT` as a DocRow."""
    pk, issuer, typ, doc_id, version, status, subject, body, salt, digest, at, index, erased = r[
        :13
    ]
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
            type_version=int(r[13]),
        ),
    )


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
        query, params = f"{SELECT} WHERE type IN ({_TYPES}) AND doc_id = ?", [doc_id]
    else:
        query, params = f"{SELECT} WHERE type = ? AND doc_id = ?", [doc_type, doc_id]
    rows = await db.fetch(f"{query} ORDER BY issuer, type, version", params)
    return [row_of(r) for r in rows]


async def document_versions(
    db: Database, doc_type: str, doc_id: str, issuer: str | None = None
) -> list[StoredDocument]:
    """Every version of a document, oldest first."""
    query, params = f"{SELECT} WHERE type = ? AND doc_id = ?", [doc_type, doc_id]
    if issuer is not None:
        query, params = query + " AND issuer = ?", [*params, issuer]
    rows = await db.sql.fetch(query + " ORDER BY version", params)
    return [row_of(r).doc for r in rows]


async def document_at(db: Database, leaf_index: int) -> StoredDocument | None:
    rows = await db.sql.fetch(f"{SELECT} WHERE leaf_index = ?", [leaf_index])
    return row_of(rows[0]).doc if rows else None


async def erase_document(
    db: Database, issuer: str, doc_type: str, doc_id: str, version: int
) -> None:
    """Legal erasure: destroy body and salt; the leaf and digest stay, proofs still verify."""

    async def work(sql: Sql) -> None:
        rows = await sql.fetch(
            "SELECT id FROM documents WHERE issuer = ? AND type = ? AND doc_id = ? AND version = ?",
            [issuer, doc_type, doc_id, version],
        )
        if not rows:
            raise NotFound("no such document version")
        await sql.execute(
            "UPDATE documents SET body = NULL, salt = NULL, erased_at = ? WHERE id = ?",
            [datetime.now(UTC), rows[0][0]],
        )

    await db.write_transaction(work)
