"""Booking and releasing claims: each a `claim` leaf, decided under the ledger lock.

A booking is a sequencer submission: whether it fits is decided inside the integrating
transaction, which holds the ledger lock (`pg_advisory_xact_lock` on PostgreSQL, the
single writer on SQLite), so the active claims on a document never exceed its claimable
amount, whichever agencies claim on however many hub processes. A claim is answered only
once its leaf is covered by a signed checkpoint.
"""

import re
import secrets
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
from hub.sql import Sql

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


async def _active_total(sql: Sql, key: DocKey) -> Decimal:
    rows = await sql.fetch(
        "SELECT amount FROM claims WHERE issuer = ? AND type = ? AND doc_id = ?"
        " AND status = 'active'",
        list(key),
    )
    return sum((Decimal(r[0]) for r in rows), ZERO)


@dataclass
class _Booking:
    fields: ClaimFields
    document_pk: int
    claimable: Decimal
    salt: bytes
    leaf_index: int = -1

    async def stage(self, sql: Sql, first_index: int, group: dict[str, Any]) -> Staged:
        f = self.fields
        key = (f.issuer, f.type, f.doc_id)
        rows = await sql.fetch(
            "SELECT version, status, erased_at FROM documents WHERE issuer = ? AND type = ?"
            " AND doc_id = ? AND version >= ? ORDER BY version",
            [*key, f.version],
        )
        if not rows or int(rows[0][0]) != f.version:
            raise NotFound("no such document")
        newer = [(int(v), s) for v, s, _ in rows[1:]]
        staged_newer = group.get(_DOCUMENTS, {}).get((*key, f.version + 1))
        if not newer and staged_newer is not None:
            newer = [(f.version + 1, getattr(staged_newer, "status", "issued"))]
        if newer:
            version, status = newer[-1]
            how = "reversed (冲红)" if status == "reversed" else "superseded"
            raise nothing_left(
                f"version {f.version} of this document is {how} by version {version}"
            )
        if rows[0][1] == "reversed":
            raise nothing_left(f"version {f.version} of this document is a reversal (冲红)")
        if rows[0][2] is not None:
            raise nothing_left(f"version {f.version} of this document was erased")
        pending: dict[DocKey, Decimal] = group.setdefault(_PENDING, {})
        claimed = await _active_total(sql, key) + pending.get(key, ZERO)
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
        return Staged(entries=[booking_leaf(f, self.salt)], writes=[(_INSERT, [row])])

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
