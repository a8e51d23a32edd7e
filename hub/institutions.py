"""Institutions (hospitals, agencies, bureaus, schools, ...), the Ed25519 keys they sign
bodies with, and the bill codes assigned to them.

A kind is any lower-case name given at registration; nothing else registers kinds. A
document type names the kinds that may issue it (hub.documents.types).
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hub.documents.types import KIND
from hub.errors import BadInput, Conflict
from hub.store.db import Database, Sql

# The kinds the roles are named after: role hospital is for kind hospital, role agency for
# every other kind.
KINDS = ("hospital", "agency")
_BILL_CODE: Final = re.compile(r"[0-9]{8}")
# Ids appear in tokens (`inst`), grants, URLs and log lines: no spaces, no markup.
_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
ID_RULE: Final = "1-64 characters, each an ASCII letter, a digit, '.', '_' or '-'"


@dataclass(frozen=True)
class InstitutionRecord:
    id: str
    name: str
    kind: str
    signatures_required: bool
    bill_codes: tuple[str, ...] = ()


def parse_public_key(data: bytes) -> bytes:
    """Raw 32-byte Ed25519 public key from a PEM file, or from 32 raw bytes."""
    if len(data) == 32:
        return data
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise BadInput("key: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BadInput("key: must be an Ed25519 public key")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def check_institution_id(id: str) -> None:
    """BadInput unless ``id`` is a well-formed institution id."""
    if not _ID.fullmatch(id):
        raise BadInput(f"id: an institution id is {ID_RULE}")


def check_kind(kind: str) -> None:
    if not isinstance(kind, str) or not KIND.fullmatch(kind):
        raise BadInput(
            "kind: a lower-case name of at most 16 characters (letters, digits, _),"
            " such as hospital, agency, finance_bureau or school"
        )


async def add_institution(
    db: Database,
    id: str,
    name: str,
    kind: str,
    *,
    signatures_required: bool = False,
    bill_codes: Sequence[str] = (),
) -> InstitutionRecord:
    """Register an institution; ``bill_codes`` are the codes the finance bureau assigned it
    (an institution registered with codes uses only those)."""
    check_kind(kind)
    check_institution_id(id)
    if not name or len(name) > 200:
        raise BadInput("name: required, at most 200 characters")
    codes = tuple(dict.fromkeys(bill_codes))
    for code in codes:
        if not isinstance(code, str) or not _BILL_CODE.fullmatch(code):
            raise BadInput("billCodes: each bill code is 8 digits")

    async def work(sql: Sql) -> None:
        if await sql.fetch("SELECT 1 FROM institutions WHERE id = ?", [id]):
            raise Conflict(f"institution {id} already exists")
        if codes:
            taken = await sql.fetch(
                f"SELECT code FROM bill_codes WHERE code IN ({','.join('?' * len(codes))})",
                list(codes),
            )
            if taken:
                raise Conflict(f"billCodes: {taken[0][0]} belongs to another institution")
        now = datetime.now(UTC)
        await sql.execute(
            "INSERT INTO institutions (id, name, kind, signatures_required, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [id, name, kind, signatures_required, now],
        )
        if codes:
            await sql.execute_many(
                "INSERT INTO bill_codes (code, institution, assigned, created_at)"
                " VALUES (?, ?, ?, ?)",
                [(code, id, True, now) for code in codes],
            )

    await db.write_transaction(work)
    return InstitutionRecord(id, name, kind, signatures_required, codes)


async def add_issuer_key(db: Database, institution: str, public_key: bytes) -> None:
    raw = parse_public_key(public_key)

    async def work(sql: Sql) -> None:
        rows = await sql.fetch("SELECT kind FROM institutions WHERE id = ?", [institution])
        if not rows:
            raise BadInput(f"institution {institution} is not registered")
        await sql.execute(
            "INSERT INTO issuer_keys (institution_id, public_key, created_at) VALUES (?, ?, ?)",
            [institution, raw, datetime.now(UTC)],
        )

    await db.write_transaction(work)


async def list_institutions(db: Database) -> list[InstitutionRecord]:
    rows = await db.sql.fetch(
        "SELECT id, name, kind, signatures_required FROM institutions ORDER BY id"
    )
    codes = await _bill_codes(db, None)
    return [InstitutionRecord(r[0], r[1], r[2], bool(r[3]), codes.get(r[0], ())) for r in rows]


async def institutions_by_id(db: Database, ids: Sequence[str]) -> list[InstitutionRecord | None]:
    """The institutions ``ids`` name, in order (None for an unknown id): one query each
    for the institutions and their codes, whatever the number of ids."""
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    # Read for the tokens of most requests: off the writer's connection (Database.fetch).
    rows = await db.fetch(
        f"SELECT id, name, kind, signatures_required FROM institutions WHERE id IN ({marks})",
        list(ids),
    )
    codes = await _bill_codes(db, ids)
    found = {
        r[0]: InstitutionRecord(r[0], r[1], r[2], bool(r[3]), codes.get(r[0], ())) for r in rows
    }
    return [found.get(i) for i in ids]


async def _bill_codes(db: Database, ids: Sequence[str] | None) -> dict[str, tuple[str, ...]]:
    query, params = "SELECT institution, code FROM bill_codes", list(ids or ())
    if ids is not None:
        query += f" WHERE institution IN ({','.join('?' * len(ids))})"
    by_institution: dict[str, list[str]] = {}
    for institution, code in await db.fetch(query + " ORDER BY code", params):
        by_institution.setdefault(str(institution), []).append(str(code))
    return {k: tuple(v) for k, v in by_institution.items()}
