"""`hub ledger verify` over the whole database: the ledger's own check, and every table
whose rows each stand for one leaf, rebuilt with the same leaf-data builders the writers
use (hub.documents.canonical) so the two cannot drift apart."""

import hashlib
import json
from collections.abc import Callable

from hub.claims.leaves import CLAIM_LEAF_ROWS
from hub.documents.canonical import (
    access_leaf_data,
    body_digest,
    document_leaf_data,
    grant_leaf_data,
    type_leaf_data,
)
from hub.ledger.audit import AuditReport, Row, RowCheck
from hub.ledger.audit import verify_ledger as verify_log
from hub.ledger.note import Verifier
from hub.store.db import Database

__all__ = ["AuditReport", "row_checks", "verify_ledger"]


async def verify_ledger(
    db: Database,
    verifier: Verifier,
    origin: str,
    progress: Callable[[int, int], None] | None = None,
) -> AuditReport:
    """Raise LedgerCorrupt naming the first bad row; return what was checked otherwise."""
    return await verify_log(db, verifier, origin, progress, row_checks(db))


def row_checks(db: Database) -> list[RowCheck]:
    """The tables whose rows each stand for one leaf: documents, access events, grants,
    document types, claims (a released claim's row stands for two)."""
    page = " WHERE {index} > ? ORDER BY {index} LIMIT ?"

    def document(row: Row) -> bytes:
        _, _, issuer, type_, doc_id, version, digest, issued_at, _, _ = row
        return document_leaf_data(
            issuer=issuer,
            type=type_,
            id=doc_id,
            version=int(version),
            digest=bytes(digest),
            issued_at=issued_at,
        )

    def body_problem(row: Row) -> str | None:
        digest, body, salt = row[6], row[8], row[9]
        if body is not None and (
            salt is None or body_digest(bytes(salt), body.encode()) != bytes(digest)
        ):
            return "body does not match its digest"
        return None

    def access(row: Row) -> bytes:
        _, _, agency, issuer, type_, doc_id, version, purpose, at = row
        return access_leaf_data(
            agency=agency,
            issuer=issuer,
            type=type_,
            id=doc_id,
            version=int(version),
            purpose=purpose,
            at=at,
        )

    def grant(row: Row) -> bytes:
        _, _, agency, type_, issuers, view, purpose, valid_from, valid_until, claims = row
        return grant_leaf_data(
            id=row[0],
            agency=agency,
            type=type_,
            issuers=json.loads(issuers) if isinstance(issuers, str) else issuers,
            view=view,
            purpose=purpose,
            valid_from=valid_from,
            valid_until=valid_until,
            action="create",
            at=valid_from,
            claims=bool(claims),
        )

    def document_type(row: Row) -> bytes:
        _, _, name, version, digest, _ = row
        return type_leaf_data(name=name, version=int(version), digest=bytes(digest))

    def definition_problem(row: Row) -> str | None:
        digest, definition = bytes(row[4]), row[5]
        if hashlib.sha256(definition.encode()).digest() != digest:
            return "definition does not match its digest"
        return None

    return [
        RowCheck(
            db,
            "documents",
            "SELECT id, leaf_index, issuer, type, doc_id, version, digest, issued_at, body, salt"
            " FROM documents" + page.format(index="leaf_index"),
            document,
            body_problem,
        ),
        RowCheck(
            db,
            "access_events",
            "SELECT a.id, a.leaf_index, a.agency, d.issuer, d.type, d.doc_id, d.version,"
            " a.purpose, a.at FROM access_events a JOIN documents d ON d.id = a.document_id"
            + page.format(index="a.leaf_index"),
            access,
        ),
        # A grant row carries the leaf of its creation; a revocation's leaf has no row.
        RowCheck(
            db,
            "grants",
            "SELECT id, leaf_index, agency, type, issuers, view, purpose, valid_from, valid_until,"
            " claims FROM grants" + page.format(index="leaf_index"),
            grant,
        ),
        RowCheck(
            db,
            "document_types",
            "SELECT id, leaf_index, name, version, digest, definition FROM document_types"
            + page.format(index="leaf_index"),
            document_type,
            definition_problem,
        ),
        *(RowCheck(db, c.table, c.query, c.expect, c.problem) for c in CLAIM_LEAF_ROWS),
    ]
