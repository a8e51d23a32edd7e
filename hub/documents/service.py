"""Submitting documents: validation, signatures, idempotency and anchoring in the ledger.

Everything that can be decided without the ledger lock (schema, canonical form, issuer
signature) is decided before queueing; identity decisions (CREATED, DUPLICATE, CONFLICT)
are made under the lock, so two concurrent submissions of one document cannot both win.
"""

import asyncio
import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Protocol

import orjson
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from hub.access.reads import fetch
from hub.documents.canonical import (
    body_digest,
    canonical_json,
    canonical_json_of_checked,
    document_leaf_data,
    is_timestamp,
    new_salts,
)
from hub.documents.errors import BadDocument
from hub.documents.invoice import INVOICE_TYPE, invoice_document_id, validate_invoice
from hub.errors import BadInput, BadSignature, Conflict, HubError, NotFound
from hub.ledger.sequencer import Sequencer, Staged
from hub.ledger.storage import SignedHead
from hub.ledger.tree import leaf_hash
from hub.store.db import Database, Sql

CREATED, DUPLICATE, REJECTED = "CREATED", "DUPLICATE", "REJECTED"
MAX_BODY_BYTES = 256 * 1024
_TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

_INSERT = (
    "INSERT INTO documents (issuer, type, doc_id, version, supersedes, status, subject, body,"
    " salt, digest, issued_at, leaf_index, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class SubmittedDocument(Protocol):
    """What `DocumentService.submit` reads of each document: `DocumentInput`, or the
    GraphQL input object as it comes, which is not copied into one per document."""

    @property
    def type(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def body(self) -> object: ...
    @property
    def issued_at(self) -> str | None: ...
    @property
    def supersedes(self) -> int | None: ...
    @property
    def signature(self) -> str | None: ...


@dataclass(frozen=True)
class DocumentInput:
    type: str
    id: str
    body: object
    issued_at: str | None = None
    supersedes: int | None = None
    signature: str | None = None


@dataclass
class SubmitResult:
    id: str
    status: str
    version: int | None = None
    leaf_index: int | None = None
    leaf_hash: bytes | None = None
    error: HubError | None = None


@dataclass(frozen=True)
class IssuerPolicy:
    """What the hub knows about the submitting institution's signatures."""

    keys: tuple[VerifyKey, ...] = ()
    signatures_required: bool = False


@dataclass
class _Candidate:
    position: int
    type: str
    id: str
    version: int
    supersedes: int | None
    body: bytes  # JCS
    issued_at: str
    status: str
    subject: str | None
    # Set by `seal`, before the integrating transaction: none of it depends on the ledger.
    salt: bytes = b""
    digest: bytes = b""
    leaf: bytes = b""
    leaf_hash: bytes = b""


def seal(candidate: _Candidate, issuer: str, salt: bytes) -> None:
    """Salt, digest and leaf of a version that may be appended.

    Done before the sequencer takes the batch, so the integrating transaction, which every
    caller waits for, holds no more than the choice of leaf indexes and the writes.
    """
    candidate.salt = salt
    candidate.digest = body_digest(salt, candidate.body)
    candidate.leaf = document_leaf_data(
        issuer=issuer,
        type=candidate.type,
        id=candidate.id,
        version=candidate.version,
        digest=candidate.digest,
        issued_at=candidate.issued_at,
    )
    candidate.leaf_hash = leaf_hash(candidate.leaf)


def _reject(position: int, doc_id: str, error: HubError) -> tuple[int, SubmitResult]:
    return position, SubmitResult(id=doc_id, status=REJECTED, error=error)


def _check_signature(canonical: bytes, signature: str | None, policy: IssuerPolicy) -> None:
    if signature is None:
        if policy.signatures_required:
            raise BadSignature("this institution must sign its documents: signature is missing")
        return
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise BadSignature("signature is not valid base64") from None
    if not policy.keys:
        raise BadSignature("signature given but the institution has no registered key")
    for key in policy.keys:
        try:
            key.verify(canonical, raw)
            return
        except (BadSignatureError, ValueError):
            continue
    raise BadSignature("signature does not verify with any registered key of the institution")


def prepare(doc: SubmittedDocument, policy: IssuerPolicy) -> _Candidate:
    """Validate one input and put it in canonical form; raises a HubError naming the field."""
    if not isinstance(doc.type, str) or not _TYPE.fullmatch(doc.type):
        raise BadInput("type: must be a lower-case name such as medical_invoice")
    if not isinstance(doc.id, str) or not _ID.fullmatch(doc.id):
        raise BadInput("id: must be 1-128 letters, digits or . _ : -")
    if doc.supersedes is not None and doc.supersedes < 1:
        raise BadInput("supersedes: must name a version (1 or more)")
    if not isinstance(doc.body, dict):
        raise BadDocument("body", "must be a JSON object")
    status, subject, issued_at = "issued", None, doc.issued_at
    if doc.type == INVOICE_TYPE:
        body = validate_invoice(doc.body)
        if doc.id != invoice_document_id(body):
            raise BadInput("id: a medical invoice's id must be <billCode>-<billNumber>")
        if issued_at is not None and issued_at != body["issuedAt"]:
            raise BadInput("issuedAt: differs from body.issuedAt")
        issued_at, status, subject = body["issuedAt"], body["status"], body["patientRef"]
        if status == "reversed" and doc.supersedes is None:
            raise BadInput("supersedes: a reversal must name the version it reverses")
    if issued_at is None:
        raise BadInput("issuedAt: required for this document type")
    # validate_invoice admits only what JCS carries as is (strings, nulls, lists, objects
    # with ASCII keys): its canonical form needs no second walk.
    canonical = (
        canonical_json_of_checked(doc.body)
        if doc.type == INVOICE_TYPE
        else canonical_json(doc.body)
    )
    if len(canonical) > MAX_BODY_BYTES:
        raise BadInput(f"body: larger than {MAX_BODY_BYTES} bytes in canonical form")
    _check_signature(canonical, doc.signature, policy)
    # The leaf carries issuedAt; refuse what the leaf could not hold before anything is queued
    # (an invoice's was checked as body.issuedAt).
    if doc.type != INVOICE_TYPE and not is_timestamp(issued_at):
        raise BadInput(
            "issuedAt: must be a date-time with an offset, e.g. 2026-11-20T10:15:00+08:00"
        )
    version = (doc.supersedes or 0) + 1
    return _Candidate(
        0, doc.type, doc.id, version, doc.supersedes, canonical, issued_at, status, subject
    )


@dataclass
class _Existing:
    body: bytes | None
    leaf_index: int
    leaf_hash: bytes
    status: str


@dataclass
class DocumentBatch:
    """One caller's documents, each sealed (see `seal`), staged under the ledger lock
    (a sequencer Submission)."""

    issuer: str
    candidates: list[_Candidate]
    results: dict[int, SubmitResult] = field(default_factory=dict)
    # Set once `prefetch` has read what the database holds of this batch's documents.
    loaded: bool = False

    @classmethod
    async def prefetch(
        cls, sql: Sql, batches: Sequence["DocumentBatch"], group: dict[str, Any]
    ) -> None:
        """Read the stored versions of every batch's documents in a few queries.

        Under load a group holds many batches, and each query is a round trip that the
        whole group waits for: one per issuer and type instead of one per batch.
        """
        known: dict[tuple[str, str, str, int], _Existing] = group.setdefault("documents", {})
        wanted: dict[tuple[str, str], set[str]] = {}
        for batch in batches:
            for c in batch.candidates:
                wanted.setdefault((batch.issuer, c.type), set()).add(c.id)
        for (issuer, doc_type), ids in wanted.items():
            await _load_existing(sql, issuer, doc_type, sorted(ids), known)
        for batch in batches:
            batch.loaded = True

    async def stage(self, sql: Sql, first_index: int, group: dict[str, Any]) -> Staged:
        known: dict[tuple[str, str, str, int], _Existing] = group.setdefault("documents", {})
        if not self.loaded:
            by_type: dict[str, set[str]] = {}
            for c in self.candidates:
                by_type.setdefault(c.type, set()).add(c.id)
            for doc_type, ids in by_type.items():
                await _load_existing(sql, self.issuer, doc_type, sorted(ids), known)
        staged = Staged()
        rows = []
        now = sql.moment(datetime.now(UTC))
        for c in self.candidates:
            key = (self.issuer, c.type, c.id, c.version)
            found = known.get(key)
            if found is not None:
                self.results[c.position] = self._repeat(c, found)
                continue
            if c.supersedes is not None:
                previous = known.get((self.issuer, c.type, c.id, c.supersedes))
                if previous is None:
                    self.results[c.position] = SubmitResult(
                        c.id,
                        REJECTED,
                        error=BadInput(
                            f"supersedes: version {c.supersedes} of this document does not exist"
                        ),
                    )
                    continue
                if previous.status == "reversed":
                    self.results[c.position] = SubmitResult(
                        c.id,
                        REJECTED,
                        error=Conflict(f"version {c.supersedes} is a reversal and is final"),
                    )
                    continue
            index = first_index + len(staged.entries)
            staged.entries.append(c.leaf)
            staged.leaf_hashes.append(c.leaf_hash)
            known[key] = _Existing(c.body, index, c.leaf_hash, c.status)
            rows.append(
                (
                    self.issuer,
                    c.type,
                    c.id,
                    c.version,
                    c.supersedes,
                    c.status,
                    c.subject,
                    c.body.decode(),
                    c.salt,
                    c.digest,
                    c.issued_at,
                    index,
                    now,
                )
            )
            self.results[c.position] = SubmitResult(c.id, CREATED, c.version, index, c.leaf_hash)
        if rows:
            staged.writes.append((_INSERT, rows))
        return staged

    def outcome(self) -> object:
        return self.results

    def absorb(self, outcome: object) -> None:
        assert isinstance(outcome, dict)
        self.results = outcome

    def _repeat(self, c: _Candidate, found: _Existing) -> SubmitResult:
        if found.body is None:
            return SubmitResult(
                c.id,
                REJECTED,
                error=Conflict(
                    f"version {c.version} of this document was erased and cannot be resubmitted"
                ),
            )
        if found.body != c.body:
            return SubmitResult(
                c.id,
                REJECTED,
                error=Conflict(
                    f"version {c.version} of this document exists with a different body;"
                    " submit a new version that supersedes it"
                ),
            )
        return SubmitResult(c.id, DUPLICATE, c.version, found.leaf_index, found.leaf_hash)


async def _load_existing(
    sql: Sql,
    issuer: str,
    doc_type: str,
    ids: Sequence[str],
    known: dict[tuple[str, str, str, int], _Existing],
) -> None:
    """Add the stored versions of ``issuer``'s documents ``ids`` of ``doc_type`` to
    ``known``, in queries of at most _IDS_PER_QUERY ids (bound-parameter limits)."""
    for start in range(0, len(ids), _IDS_PER_QUERY):
        chunk = ids[start : start + _IDS_PER_QUERY]
        rows = await sql.fetch(
            "SELECT doc_id, version, body, digest, issued_at, leaf_index, status"
            " FROM documents WHERE issuer = ? AND type = ?"
            f" AND doc_id IN ({','.join('?' * len(chunk))})",
            [issuer, doc_type, *chunk],
        )
        for doc_id, version, body, digest, issued_at, index, status in rows:
            key = (issuer, doc_type, doc_id, int(version))
            if key in known:
                continue
            data = document_leaf_data(
                issuer=issuer,
                type=doc_type,
                id=doc_id,
                version=int(version),
                digest=bytes(digest),
                issued_at=issued_at,
            )
            known[key] = _Existing(
                body.encode() if body is not None else None,
                int(index),
                leaf_hash(data),
                status,
            )


_IDS_PER_QUERY = 900


# Documents validated between two turns of the event loop (~1 ms of work).
_PREPARE_SLICE = 16


class DocumentService:
    def __init__(self, db: Database, sequencer: Sequencer) -> None:
        self.db = db
        self.sequencer = sequencer

    async def issuer_policy(self, issuer: str) -> IssuerPolicy:
        # Off the writer's connection: there it would wait for the integrating
        # transaction to commit before the batch could even be validated.
        rows = await fetch(
            self.db, "SELECT kind, signatures_required FROM institutions WHERE id = ?", [issuer]
        )
        if not rows or rows[0][0] != "hospital":
            raise NotFound("the submitting institution is not a registered hospital")
        keys = await fetch(
            self.db,
            "SELECT public_key FROM issuer_keys WHERE institution_id = ? AND revoked_at IS NULL",
            [issuer],
        )
        return IssuerPolicy(
            tuple(VerifyKey(bytes(k[0])) for k in keys),
            bool(rows[0][1]),
        )

    async def submit(
        self, issuer: str, documents: Sequence[SubmittedDocument]
    ) -> tuple[list[SubmitResult], SignedHead]:
        """Anchor `documents` for `issuer`; one result per input, in order.

        Rejected documents leave nothing behind; accepted ones (CREATED or DUPLICATE) are
        covered by the returned signed checkpoint when this returns.
        """
        policy = await self.issuer_policy(issuer)
        results: dict[int, SubmitResult] = {}
        batch = DocumentBatch(issuer, [])
        for position, doc in enumerate(documents):
            if position and position % _PREPARE_SLICE == 0:
                # Let the sequencer's database round trips in between: a whole batch
                # validated in one go would hold each of them up by milliseconds.
                await asyncio.sleep(0)
            try:
                candidate = prepare(doc, policy)
            except HubError as exc:
                results[position] = SubmitResult(str(doc.id), REJECTED, error=exc)
                continue
            candidate.position = position
            batch.candidates.append(candidate)
        for candidate, salt in zip(batch.candidates, new_salts(len(batch.candidates)), strict=True):
            seal(candidate, issuer, salt)
        head = await self.sequencer.submit(batch)
        results.update(batch.results)
        return [results[i] for i in range(len(documents))], head


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


_SELECT = (
    "SELECT issuer, type, doc_id, version, status, subject, body, salt, digest, issued_at,"
    " leaf_index, erased_at FROM documents"
)


def _stored(row: Sequence[Any]) -> StoredDocument:
    (
        issuer,
        type_,
        doc_id,
        version,
        status,
        subject,
        body,
        salt,
        digest,
        issued_at,
        index,
        erased,
    ) = row
    return StoredDocument(
        issuer,
        type_,
        doc_id,
        int(version),
        "erased" if erased is not None else status,
        subject,
        body,
        bytes(salt) if salt is not None else None,
        bytes(digest),
        issued_at,
        int(index),
        erased is not None,
    )


async def document_versions(
    db: Database, doc_type: str, doc_id: str, issuer: str | None = None
) -> list[StoredDocument]:
    """Every version of a document, oldest first."""
    query, params = f"{_SELECT} WHERE type = ? AND doc_id = ?", [doc_type, doc_id]
    if issuer is not None:
        query, params = query + " AND issuer = ?", [*params, issuer]
    rows = await db.sql.fetch(query + " ORDER BY version", params)
    return [_stored(r) for r in rows]


async def document_at(db: Database, leaf_index: int) -> StoredDocument | None:
    rows = await db.sql.fetch(f"{_SELECT} WHERE leaf_index = ?", [leaf_index])
    return _stored(rows[0]) if rows else None


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
