"""Booking and releasing claims: each a `claim` leaf, decided under the ledger lock.

A booking is a sequencer submission: whether it fits is decided inside the integrating
transaction, which holds the ledger lock (`pg_advisory_xact_lock` on PostgreSQL, the
single writer on SQLite), so the active claims on a document never exceed its claimable
amount, whichever agencies claim on however many hub processes. A claim is answered only
once its leaf is covered by a signed checkpoint.
"""

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from hub.access.grants import timestamp
from hub.claims.claimable import money_text, parse_money
from hub.claims.leaves import (
    ACTIVE,
    RELEASED,
    ClaimFields,
    booking_leaf,
    release_leaf,
)
from hub.claims.store import SELECT, ClaimRecord, record_of
from hub.documents.canonical import SALT_BYTES
from hub.errors import BadInput, Conflict, NotFound
from hub.ledger.sequencer import Staged
from hub.ledger.tree import leaf_hash
from hub.store.sql import Sql

if TYPE_CHECKING:
    from hub.services import Hub

MAX_TEXT = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_INSERT = (
    "INSERT INTO claims (id, document_id, issuer, type, doc_id, version, agency, amount,"
    " reference, status, at, salt, leaf_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_RELEASE = (
    "UPDATE claims SET status = ?, released_at = ?, release_reason = ?, release_leaf_index = ?"
    " WHERE id = ?"
)
# Group scratch (Submission.stage): what this group's claims add to each document's total,
# and the claims it released; its writes run only after every submission has staged.
_PENDING, _RELEASED = "claims.pending", "claims.released"
# Documents intake keeps the versions a group appends here (hub.documents.service): a
# version that supersedes the claimed one in the same group is seen before it is written.
_DOCUMENTS = "documents"
ZERO = Decimal("0.00")

DocKey = tuple[str, str, str]


@dataclass(frozen=True)
class Target:
    """The document version an agency claims on, as its resolver found it."""

    document_pk: int
    issuer: str
    type: str
    doc_id: str
    version: int
    claimable: Decimal


def nothing_left(why: str) -> Conflict:
    return Conflict(f"{why}: nothing is claimable on it ({money_text(ZERO)} still claimable)")


# What the group's bookings need of the database, read once for all of them (prefetch).
_VERSIONS, _TOTALS = "claims.versions", "claims.totals"
_IDS_PER_QUERY = 900

Version = tuple[int, str, bool]  # version, status, erased


async def _load(sql: Sql, keys: set[DocKey], group: dict[str, Any]) -> None:
    """Every stored version, and the active claims' total, of the documents ``keys``."""
    versions: dict[DocKey, list[Version]] = group.setdefault(_VERSIONS, {})
    totals: dict[DocKey, Decimal] = group.setdefault(_TOTALS, {})
    by_issuer: dict[tuple[str, str], list[str]] = {}
    for issuer, doc_type, doc_id in sorted(keys - versions.keys()):
        by_issuer.setdefault((issuer, doc_type), []).append(doc_id)
    for (issuer, doc_type), ids in by_issuer.items():
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = ids[start : start + _IDS_PER_QUERY]
            where = f"issuer = ? AND type = ? AND doc_id IN ({','.join('?' * len(chunk))})"
            params = [issuer, doc_type, *chunk]
            for doc_id in chunk:
                versions[(issuer, doc_type, doc_id)] = []
                totals[(issuer, doc_type, doc_id)] = ZERO
            for doc_id, version, status, erased in await sql.fetch(
                f"SELECT doc_id, version, status, erased_at FROM documents WHERE {where}", params
            ):
                versions[(issuer, doc_type, doc_id)].append(
                    (int(version), status, erased is not None)
                )
            for doc_id, amount in await sql.fetch(
                f"SELECT doc_id, amount FROM claims WHERE {where} AND status = 'active'", params
            ):
                totals[(issuer, doc_type, doc_id)] += Decimal(amount)


@dataclass
class _Booking:
    fields: ClaimFields
    document_pk: int
    claimable: Decimal
    salt: bytes
    # Built before the integrating transaction: nothing in it depends on the ledger.
    leaf: bytes = b""
    leaf_hash: bytes = b""
    leaf_index: int = -1

    def __post_init__(self) -> None:
        if not self.leaf:
            self.leaf = booking_leaf(self.fields, self.salt)
            self.leaf_hash = leaf_hash(self.leaf)

    @classmethod
    async def prefetch(
        cls, sql: Sql, bookings: Sequence["_Booking"], group: dict[str, Any]
    ) -> None:
        await _load(
            sql, {(b.fields.issuer, b.fields.type, b.fields.doc_id) for b in bookings}, group
        )

    async def stage(self, sql: Sql, first_index: int, group: dict[str, Any]) -> Staged:
        f = self.fields
        key = (f.issuer, f.type, f.doc_id)
        if key not in group.get(_VERSIONS, {}):
            await _load(sql, {key}, group)
        stored = sorted(v for v in group[_VERSIONS][key] if v[0] >= f.version)
        if not stored or stored[0][0] != f.version:
            raise NotFound("no such document")
        newer = [(v, status) for v, status, _ in stored[1:]]
        staged_newer = group.get(_DOCUMENTS, {}).get((*key, f.version + 1))
        if not newer and staged_newer is not None:
            newer = [(f.version + 1, getattr(staged_newer, "status", "issued"))]
        if newer:
            version, status = newer[-1]
            how = "reversed (冲红)" if status == "reversed" else "superseded"
            raise nothing_left(
                f"version {f.version} of this document is {how} by version {version}"
            )
        if stored[0][1] == "reversed":
            raise nothing_left(f"version {f.version} of this document is a reversal (冲红)")
        if stored[0][2]:
            raise nothing_left(f"version {f.version} of this document was erased")
        pending: dict[DocKey, Decimal] = group.setdefault(_PENDING, {})
        claimed = group[_TOTALS][key] + pending.get(key, ZERO)
        amount = Decimal(f.amount)
        left = max(self.claimable - claimed, ZERO)
        if amount > left:
            raise Conflict(
                f"{f.amount} exceeds what is still claimable on this document:"
                f" {money_text(left)} of {money_text(self.claimable)}"
            )
        pending[key] = pending.get(key, ZERO) + amount
        self.leaf_index = first_index
        row = (
            f.id,
            self.document_pk,
            f.issuer,
            f.type,
            f.doc_id,
            f.version,
            f.agency,
            f.amount,
            f.reference,
            ACTIVE,
            f.at,
            self.salt,
            first_index,
        )
        return Staged(entries=[self.leaf], leaf_hashes=[self.leaf_hash], writes=[(_INSERT, [row])])

    def outcome(self) -> object:
        return self.leaf_index

    def absorb(self, outcome: object) -> None:
        assert isinstance(outcome, int)
        self.leaf_index = outcome


@dataclass
class _Release:
    claim_id: str
    agency: str
    reason: str
    at: str
    result: ClaimRecord | None = None

    async def stage(self, sql: Sql, first_index: int, group: dict[str, Any]) -> Staged:
        rows = await sql.fetch(
            f"{SELECT} WHERE c.id = ? AND c.agency = ?", [self.claim_id, self.agency]
        )
        if not rows:
            raise NotFound("no such claim")  # another agency's claim answers the same
        claim = record_of(rows[0])
        released: set[str] = group.setdefault(_RELEASED, set())
        if claim.stored_status == RELEASED or claim.id in released:
            raise Conflict("this claim is already released")
        released.add(claim.id)
        key = (claim.issuer, claim.type, claim.doc_id)
        pending: dict[DocKey, Decimal] = group.setdefault(_PENDING, {})
        pending[key] = pending.get(key, ZERO) - Decimal(claim.amount)
        self.result = ClaimRecord(
            **{
                **claim.__dict__,
                "stored_status": RELEASED,
                "released_at": self.at,
                "release_reason": self.reason,
                "release_leaf_index": first_index,
            }
        )
        leaf = release_leaf(claim.id, claim.agency, self.reason, self.at, claim.salt)
        row = (RELEASED, self.at, self.reason, first_index, claim.id)
        return Staged(entries=[leaf], writes=[(_RELEASE, [row])])

    def outcome(self) -> object:
        return self.result

    def absorb(self, outcome: object) -> None:
        assert outcome is None or isinstance(outcome, ClaimRecord)  # None: refused
        self.result = outcome


def _text(value: str, name: str) -> str:
    if not value.strip():
        raise BadInput(f"{name}: required")
    if len(value) > MAX_TEXT:
        raise BadInput(f"{name}: at most {MAX_TEXT} characters")
    if _CONTROL.search(value):
        raise BadInput(f"{name}: must not contain control characters")
    return value


def claim_amount(text: str) -> str:
    """An amount as claims store it (two places); BadInput if it is not a positive one."""
    amount = parse_money(text)
    if amount is None:
        raise BadInput("amount: a decimal string with at most 2 places, e.g. 12.50")
    if amount <= ZERO:
        raise BadInput("amount: must be more than 0.00")
    return money_text(amount)


async def book_claim(
    hub: "Hub",
    agency: str,
    target: Target,
    amount: str,
    reference: str,
    now: datetime | None = None,
) -> ClaimRecord:
    """Book ``amount`` against ``target`` for ``agency``; Conflict, saying how much is
    still claimable, when it does not fit."""
    fields = ClaimFields(
        id=f"c_{secrets.token_hex(12)}",
        issuer=target.issuer,
        type=target.type,
        doc_id=target.doc_id,
        version=target.version,
        agency=agency,
        amount=claim_amount(amount),
        reference=_text(reference, "reference"),
        at=timestamp(now or datetime.now(UTC)),
    )
    booking = _Booking(
        fields, target.document_pk, target.claimable, secrets.token_bytes(SALT_BYTES)
    )
    await hub.sequencer.submit(booking)
    return ClaimRecord(
        id=fields.id,
        document_pk=target.document_pk,
        issuer=fields.issuer,
        type=fields.type,
        doc_id=fields.doc_id,
        version=fields.version,
        agency=agency,
        amount=fields.amount,
        reference=fields.reference,
        stored_status=ACTIVE,
        at=fields.at,
        salt=booking.salt,
        leaf_index=booking.leaf_index,
        released_at=None,
        release_reason=None,
        release_leaf_index=None,
        disputed=False,
    )


async def release_claim(
    hub: "Hub", agency: str, claim_id: str, reason: str, now: datetime | None = None
) -> ClaimRecord:
    """Undo ``agency``'s own claim (入账撤销); NotFound for any other claim id."""
    release = _Release(
        claim_id, agency, _text(reason, "reason"), timestamp(now or datetime.now(UTC))
    )
    await hub.sequencer.submit(release)
    assert release.result is not None
    return release.result
