"""Intake: validating, sealing and submitting documents of every registered type.

Everything that can be decided without the ledger lock (the type's schema or rule set,
canonical form, issuer signature, which kinds may issue the type) is decided before
queueing; identity decisions (CREATED, DUPLICATE, CONFLICT, a printed code's owner, a
bill code's first use) are made under the lock, so two concurrent submissions of one
document cannot both win.
"""

import asyncio
import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from hub.db import Database, Sql
from hub.documents.canonical import (
    body_digest,
    canonical_json,
    canonical_json_of_checked,
    document_leaf_data,
    is_timestamp,
    new_salts,
)
from hub.documents.errors import BadDocument
from hub.documents.pointers import MISSING
from hub.documents.registry import NEWEST_TYPE, Registry, registry_for
from hub.documents.store import (  # noqa: F401  (re-exported: readers import them from here)
    StoredDocument,
    document_at,
    document_versions,
    erase_document,
    fetch,
)
from hub.documents.types import TYPE_NAME, DocumentType
from hub.errors import BadInput, BadSignature, Conflict, Forbidden, HubError, NotFound
from hub.ledger.sequencer import Sequencer, Staged
from hub.ledger.storage import SignedHead
from hub.ledger.tree import leaf_hash

CREATED, DUPLICATE, REJECTED = "CREATED", "DUPLICATE", "REJECTED"
MAX_BODY_BYTES = 256 * 1024
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

_INSERT = (
    "INSERT INTO documents (issuer, type, doc_id, version, supersedes, status, subject, body,"
    " salt, digest, issued_at, leaf_index, created_at, type_version)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_BIND_CODE = "INSERT INTO bill_codes (code, institution, assigned, created_at) VALUES (?, ?, ?, ?)"


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
    """What the hub knows about the submitting institution: its kind, its signatures,
    and the bill codes it holds (``assigned``: given by the operator, so only those)."""

    keys: tuple[VerifyKey, ...] = ()
    signatures_required: bool = False
    kind: str = "hospital"
    bill_codes: frozenset[str] = frozenset()
    assigned: bool = False
    newest_type: int | None = None  # the registry's mark when the policy was read


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
    type_version: int = 1
    # Unique across issuers: a printed-code type's id names one document.
    unique: bool = False
    # A bill code this issuer uses for the first time: bound to it under the ledger lock.
    bind_code: str | None = None
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


def _text_of(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _where(t: DocumentType, tokens: tuple[str, ...]) -> str:
    # The invoice keeps its dotted paths (body.issuedAt); other types name JSON Pointers.
    if t.rules is not None:
        return "body." + ".".join(tokens)
    return "/" + "/".join(tokens)


def _id_rule(t: DocumentType) -> str:
    return "-".join(f"<{'/'.join(tokens)}>" for tokens in t.id)


def prepare(
    doc: SubmittedDocument, policy: IssuerPolicy, types: Mapping[str, DocumentType]
) -> _Candidate:
    """Validate one input under its type's newest version and put it in canonical form;
    raises a HubError naming the field."""
    if not isinstance(doc.type, str) or not TYPE_NAME.fullmatch(doc.type):
        raise BadInput("type: must be a lower-case name such as medical_invoice")
    if not isinstance(doc.id, str) or not _ID.fullmatch(doc.id):
        raise BadInput("id: must be 1-128 letters, digits or . _ : -")
    if doc.supersedes is not None and doc.supersedes < 1:
        raise BadInput("supersedes: must name a version (1 or more)")
    t = types.get(doc.type)
    if t is None:
        raise BadInput(f"type: no document type {doc.type} is registered (see documentTypes)")
    if policy.kind not in t.issuer_kinds:
        raise Forbidden(
            f"type: {doc.type} is issued by institutions of kind {', '.join(t.issuer_kinds)},"
            f" not {policy.kind}"
        )
    body = doc.body
    if not isinstance(body, dict):
        raise BadDocument("body", "must be a JSON object")
    t.check_body(body)
    parts = [_text_of(t.value(body, tokens)) for tokens in t.id]
    document_id = "-".join(p for p in parts if p is not None)
    if None in parts or doc.id != document_id:
        title = t.title.get("en", t.name).lower()
        raise BadInput(f"id: a {title}'s id must be {_id_rule(t)}")
    issued_at = t.value(body, t.issued_at)
    if not is_timestamp(issued_at):
        raise BadDocument(
            _where(t, t.issued_at),
            "must be an ISO-8601 date-time with offset, e.g. 2026-11-20T10:15:00+08:00",
        )
    if doc.issued_at is not None and doc.issued_at != issued_at:
        raise BadInput(f"issuedAt: differs from {_where(t, t.issued_at)}")
    status = t.value(body, t.status)
    if status is MISSING:
        status = "issued"
    elif status not in ("issued", "reversed"):
        raise BadDocument(_where(t, t.status or ()), "must be issued or reversed")
    if status == "reversed" and doc.supersedes is None:
        raise BadInput("supersedes: a reversal must name the version it reverses")
    subject = _text_of(t.value(body, t.subject))
    bind_code = None
    if t.rules is not None and t.rules.issuer_code is not None:
        code = body[t.rules.issuer_code]
        if code not in policy.bill_codes:
            if policy.assigned:
                raise BadInput(
                    f"body.{t.rules.issuer_code}: {code} is not one of the bill codes assigned"
                    " to this institution"
                )
            bind_code = code
    # A rule set admits only what JCS carries as is (strings, nulls, lists, objects with
    # ASCII keys): its canonical form needs no second walk.
    canonical = canonical_json_of_checked(body) if t.rules is not None else canonical_json(body)
    if len(canonical) > MAX_BODY_BYTES:
        raise BadInput(f"body: larger than {MAX_BODY_BYTES} bytes in canonical form")
    _check_signature(canonical, doc.signature, policy)
    version = (doc.supersedes or 0) + 1
    assert isinstance(issued_at, str)
    return _Candidate(
        0,
        doc.type,
        doc.id,
        version,
        doc.supersedes,
        canonical,
        issued_at,
        str(status),
        subject,
        type_version=t.version,
        unique=t.check_code is not None,
        bind_code=bind_code,
    )


@dataclass
class _Existing:
    body: bytes | None
    leaf_index: int
    leaf_hash: bytes
    status: str


_Known = dict[tuple[str, str, str, int], _Existing]


@dataclass
class DocumentBatch:
    """One caller's documents, each sealed (see `seal`), staged under the ledger lock
    (a sequencer Submission)."""

    issuer: str
    candidates: list[_Candidate]
    results: dict[int, SubmitResult] = field(default_factory=dict)
    # Set once `prefetch` has read what the database holds of this batch's documents.
    loaded: bool = False

    def _wanted(self, wanted: dict[tuple[str | None, str], set[str]]) -> None:
        # A printed-code type's ids are looked up across issuers (None): they are unique.
        for c in self.candidates:
            wanted.setdefault((None if c.unique else self.issuer, c.type), set()).add(c.id)

    @classmethod
    async def prefetch(
        cls, sql: Sql, batches: Sequence["DocumentBatch"], group: dict[str, Any]
    ) -> None:
        """Read the stored versions of every batch's documents in a few queries.

        Under load a group holds many batches, and each query is a round trip that the
        whole group waits for: one per issuer and type instead of one per batch.
        """
        known: _Known = group.setdefault("documents", {})
        owners: dict[tuple[str, str], str] = group.setdefault("owners", {})
        wanted: dict[tuple[str | None, str], set[str]] = {}
        for batch in batches:
            batch._wanted(wanted)
        for (issuer, doc_type), ids in wanted.items():
            await _load_existing(sql, issuer, doc_type, sorted(ids), known, owners)
        await _load_codes(sql, batches, group)
        for batch in batches:
            batch.loaded = True

    async def stage(self, sql: Sql, first_index: int, group: dict[str, Any]) -> Staged:
        known: _Known = group.setdefault("documents", {})
        owners: dict[tuple[str, str], str] = group.setdefault("owners", {})
        if not self.loaded:
            wanted: dict[tuple[str | None, str], set[str]] = {}
            self._wanted(wanted)
            for (issuer, doc_type), ids in wanted.items():
                await _load_existing(sql, issuer, doc_type, sorted(ids), known, owners)
            await _load_codes(sql, [self], group)
        codes: dict[str, str] = group["codes"]
        staged = Staged()
        rows = []
        bound = []
        now = sql.moment(datetime.now(UTC))
        for c in self.candidates:
            key = (self.issuer, c.type, c.id, c.version)
            if c.bind_code is not None and codes.get(c.bind_code, self.issuer) != self.issuer:
                self.results[c.position] = SubmitResult(
                    c.id,
                    REJECTED,
                    error=BadInput(
                        f"body.billCode: {c.bind_code} is another institution's bill code;"
                        " use one of this institution's"
                    ),
                )
                continue
            if c.unique and owners.get((c.type, c.id), self.issuer) != self.issuer:
                self.results[c.position] = SubmitResult(
                    c.id,
                    REJECTED,
                    error=Conflict(
                        f"id: a {c.type} with this id was issued by another institution;"
                        " printed codes name one document"
                    ),
                )
                continue
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
            if c.bind_code is not None and c.bind_code not in codes:
                codes[c.bind_code] = self.issuer
                bound.append((c.bind_code, self.issuer, False, now))
            if c.unique:
                owners[(c.type, c.id)] = self.issuer
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
                    c.type_version,
                )
            )
            self.results[c.position] = SubmitResult(c.id, CREATED, c.version, index, c.leaf_hash)
        if bound:
            staged.writes.append((_BIND_CODE, bound))
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


async def _load_codes(sql: Sql, batches: Sequence[DocumentBatch], group: dict[str, Any]) -> None:
    """The owners of the bill codes the batches would bind (first uses are rare)."""
    codes: dict[str, str] = group.setdefault("codes", {})
    wanted = sorted(
        {c.bind_code for b in batches for c in b.candidates if c.bind_code is not None} - set(codes)
    )
    for start in range(0, len(wanted), _IDS_PER_QUERY):
        chunk = wanted[start : start + _IDS_PER_QUERY]
        marks = ",".join("?" * len(chunk))
        rows = await sql.fetch(
            f"SELECT code, institution FROM bill_codes WHERE code IN ({marks})", chunk
        )
        codes.update({str(code): str(owner) for code, owner in rows})


async def _load_existing(
    sql: Sql,
    issuer: str | None,
    doc_type: str,
    ids: Sequence[str],
    known: _Known,
    owners: dict[tuple[str, str], str],
) -> None:
    """Add the stored versions of documents ``ids`` of ``doc_type`` to ``known`` (of
    ``issuer``, or of any issuer when None), in queries of at most _IDS_PER_QUERY ids
    (bound-parameter limits); ``owners`` learns who issued each id."""
    for start in range(0, len(ids), _IDS_PER_QUERY):
        chunk = ids[start : start + _IDS_PER_QUERY]
        query = (
            "SELECT issuer, doc_id, version, body, digest, issued_at, leaf_index, status"
            " FROM documents WHERE type = ?"
            f" AND doc_id IN ({','.join('?' * len(chunk))})"
        )
        params: list[Any] = [doc_type, *chunk]
        if issuer is not None:
            query, params = query + " AND issuer = ?", [*params, issuer]
        for owner, doc_id, version, body, digest, issued_at, index, status in await sql.fetch(
            query, params
        ):
            owners.setdefault((doc_type, doc_id), owner)
            key = (owner, doc_type, doc_id, int(version))
            if key in known:
                continue
            data = document_leaf_data(
                issuer=owner,
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
    def __init__(self, db: Database, sequencer: Sequencer, types: Registry | None = None) -> None:
        self.db = db
        self.sequencer = sequencer
        self.types = types if types is not None else registry_for(db)

    async def issuer_policy(self, issuer: str) -> IssuerPolicy:
        # Off the writer's connection: there it would wait for the integrating
        # transaction to commit before the batch could even be validated.
        # The newest type registration rides along: one round trip fewer per request.
        rows = await fetch(
            self.db,
            f"SELECT kind, signatures_required, ({NEWEST_TYPE}) FROM institutions WHERE id = ?",
            [issuer],
        )
        if not rows:
            raise NotFound("the submitting institution is not registered")
        keys = await fetch(
            self.db,
            "SELECT public_key FROM issuer_keys WHERE institution_id = ? AND revoked_at IS NULL",
            [issuer],
        )
        kind = str(rows[0][0])
        codes: list[Sequence[Any]] = []
        if kind == "hospital":
            codes = await fetch(
                self.db, "SELECT code, assigned FROM bill_codes WHERE institution = ?", [issuer]
            )
        return IssuerPolicy(
            tuple(VerifyKey(bytes(k[0])) for k in keys),
            bool(rows[0][1]),
            kind,
            frozenset(str(c[0]) for c in codes),
            any(bool(c[1]) for c in codes),
            None if rows[0][2] is None else int(rows[0][2]),
        )

    async def submit(
        self, issuer: str, documents: Sequence[SubmittedDocument]
    ) -> tuple[list[SubmitResult], SignedHead]:
        """Anchor `documents` for `issuer`; one result per input, in order.

        Rejected documents leave nothing behind; accepted ones (CREATED or DUPLICATE) are
        covered by the returned signed checkpoint when this returns.
        """
        policy = await self.issuer_policy(issuer)
        # A type registered on any process counts at once.
        await self.types.refresh_to(policy.newest_type)
        types = _Newest(self.types)
        if not any(policy.kind in t.issuer_kinds for t in types.values()):
            raise NotFound("the submitting institution issues no registered document type")
        results: dict[int, SubmitResult] = {}
        batch = DocumentBatch(issuer, [])
        for position, doc in enumerate(documents):
            if position and position % _PREPARE_SLICE == 0:
                # Let the sequencer's database round trips in between: a whole batch
                # validated in one go would hold each of them up by milliseconds.
                await asyncio.sleep(0)
            try:
                candidate = prepare(doc, policy, types)
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


class _Newest(Mapping[str, DocumentType]):
    """Type name -> its newest version: what new documents are validated under."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def __getitem__(self, name: str) -> DocumentType:
        found = self.registry.latest(name)
        if found is None:
            raise KeyError(name)
        return found

    def __iter__(self) -> Any:
        return iter(t.name for t in self.registry.all())

    def __len__(self) -> int:
        return len(self.registry.all())
