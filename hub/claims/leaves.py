"""What a claim puts on the ledger: a `claim` leaf per booking and per release.

The leaf is public (it is served on the log endpoints), so it holds only a salted digest
of the claim, the action and the time: no document, amount, agency or reference, and so
nobody learns from the log that a bill was claimed, or by whom. The claim's holder keeps
the salt and the fields, and proves with them that the leaf is its claim:

    leaf data = JCS({"v":1,"kind":"claim","action":A,"digest":base64(D),"at":T})
    D         = SHA-256(salt || JCS(record))

where the record of a booking is ``{"v":1,"claim","action":"claim","document":{"issuer",
"type","id","version"},"agency","amount","reference","at"}`` and that of a release
``{"v":1,"claim","action":"release","agency","reason","at"}``. Writer and audit both
build leaves here.
"""

import base64
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hub.documents.canonical import LEAF_VERSION, SALT_BYTES, canonical_json

BOOK, RELEASE = "claim", "release"
ACTIVE, RELEASED = "active", "released"  # stored statuses; DISPUTED is derived (store.py)

Row = tuple[Any, ...]


@dataclass(frozen=True)
class ClaimFields:
    """A booking as its record covers it."""

    id: str
    issuer: str
    type: str
    doc_id: str
    version: int
    agency: str
    amount: str
    reference: str
    at: str


def booking_record(c: ClaimFields) -> bytes:
    return canonical_json(
        {
            "v": LEAF_VERSION,
            "claim": c.id,
            "action": BOOK,
            "document": {"issuer": c.issuer, "type": c.type, "id": c.doc_id, "version": c.version},
            "agency": c.agency,
            "amount": c.amount,
            "reference": c.reference,
            "at": c.at,
        },
        path="claim",
    )


def release_record(claim_id: str, agency: str, reason: str, at: str) -> bytes:
    return canonical_json(
        {
            "v": LEAF_VERSION,
            "claim": claim_id,
            "action": RELEASE,
            "agency": agency,
            "reason": reason,
            "at": at,
        },
        path="release",
    )


def record_digest(salt: bytes, record: bytes) -> bytes:
    if len(salt) != SALT_BYTES:
        raise ValueError(f"salt must be {SALT_BYTES} bytes, got {len(salt)}")
    return hashlib.sha256(salt + record).digest()


def claim_leaf_data(action: str, salt: bytes, record: bytes, at: str) -> bytes:
    """The leaf data of a booking or release whose record is ``record``."""
    return canonical_json(
        {
            "v": LEAF_VERSION,
            "kind": "claim",
            "action": action,
            "digest": base64.b64encode(record_digest(salt, record)).decode("ascii"),
            "at": at,
        },
        path="leaf",
    )


def booking_leaf(c: ClaimFields, salt: bytes) -> bytes:
    return claim_leaf_data(BOOK, salt, booking_record(c), c.at)


def release_leaf(claim_id: str, agency: str, reason: str, at: str, salt: bytes) -> bytes:
    return claim_leaf_data(RELEASE, salt, release_record(claim_id, agency, reason, at), at)


@dataclass(frozen=True)
class LeafRows:
    """One kind of row that stands for one leaf, for `hub ledger verify` (its RowCheck):
    ``query`` selects the row id and leaf index first, takes the last leaf index seen and
    a page size, and orders by leaf index."""

    table: str
    query: str
    expect: Callable[[Row], bytes]
    problem: Callable[[Row], str | None]


def _booking(row: Row) -> bytes:
    cid, _, issuer, type_, doc_id, version, agency, amount, reference, at, salt = row[:11]
    fields = ClaimFields(cid, issuer, type_, doc_id, int(version), agency, amount, reference, at)
    return booking_leaf(fields, bytes(salt))


def _booking_problem(row: Row) -> str | None:
    status, release_index = row[11], row[12]
    if status == ACTIVE and release_index is None:
        return None
    if status == RELEASED and release_index is not None:
        return None
    return f"status {status!r} does not match its release leaf"


def _release(row: Row) -> bytes:
    cid, _, agency, reason, at, salt = row
    return release_leaf(cid, agency, reason, at, bytes(salt))


CLAIM_LEAF_ROWS: Sequence[LeafRows] = (
    LeafRows(
        "claims",
        "SELECT id, leaf_index, issuer, type, doc_id, version, agency, amount, reference, at,"
        " salt, status, release_leaf_index FROM claims"
        " WHERE leaf_index > ? ORDER BY leaf_index LIMIT ?",
        _booking,
        _booking_problem,
    ),
    # A release is a second leaf of the same row.
    LeafRows(
        "claims",
        "SELECT id, release_leaf_index, agency, release_reason, released_at, salt FROM claims"
        " WHERE release_leaf_index > ? ORDER BY release_leaf_index LIMIT ?",
        _release,
        lambda row: None,
    ),
)
