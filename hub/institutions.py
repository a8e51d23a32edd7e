"""Institutions (hospitals, agencies) and the Ed25519 keys hospitals sign bodies with."""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hub.errors import BadInput, Conflict
from hub.store.db import Database, Sql

KINDS = ("hospital", "agency")
# Ids appear in tokens (`inst`), grants, URLs and log lines: no spaces, no markup.
_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
ID_RULE: Final = "1-64 characters, each an ASCII letter, a digit, '.', '_' or '-'"


@dataclass(frozen=True)
class InstitutionRecord:
    id: str
    name: str
    kind: str
    signatures_required: bool


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


async def add_institution(
    db: Database, id: str, name: str, kind: str, *, signatures_required: bool = False
) -> InstitutionRecord:
    if kind not in KINDS:
        raise BadInput(f"kind: must be one of {', '.join(KINDS)}")
    check_institution_id(id)
    if not name or len(name) > 200:
        raise BadInput("name: required, at most 200 characters")

    async def work(sql: Sql) -> None:
        if await sql.fetch("SELECT 1 FROM institutions WHERE id = ?", [id]):
            raise Conflict(f"institution {id} already exists")
        await sql.execute(
            "INSERT INTO institutions (id, name, kind, signatures_required, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [id, name, kind, signatures_required, datetime.now(UTC)],
        )

    await db.write_transaction(work)
    return InstitutionRecord(id, name, kind, signatures_required)


async def add_issuer_key(db: Database, institution: str, public_key: bytes) -> None:
    raw = parse_public_key(public_key)

    async def work(sql: Sql) -> None:
        rows = await sql.fetch("SELECT kind FROM institutions WHERE id = ?", [institution])
        if not rows or rows[0][0] != "hospital":
            raise BadInput(f"institution {institution} is not a registered hospital")
        await sql.execute(
            "INSERT INTO issuer_keys (institution_id, public_key, created_at) VALUES (?, ?, ?)",
            [institution, raw, datetime.now(UTC)],
        )

    await db.write_transaction(work)


async def list_institutions(db: Database) -> list[InstitutionRecord]:
    rows = await db.sql.fetch(
        "SELECT id, name, kind, signatures_required FROM institutions ORDER BY id"
    )
    return [InstitutionRecord(r[0], r[1], r[2], bool(r[3])) for r in rows]
