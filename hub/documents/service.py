"""Submitting documents: identity decided under the ledger lock, for every type.

Intake (hub.documents.intake) checks, canonicalises and seals each document before
queueing; here, under the lock, the identity decisions are made (CREATED, DUPLICATE,
CONFLICT, a printed code's owner, a bill code's first use), so two concurrent
submissions of one document cannot both win.
"""

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nacl.signing import VerifyKey

from hub.documents.canonical import document_leaf_data, new_salts
from hub.documents.intake import (
    Candidate,
    IssuerPolicy,
    SubmittedDocument,
    prepare,
    seal,
)
from hub.documents.registry import NEWEST_TYPE, Registry, registry_for
from hub.documents.store import (  # noqa: F401  (re-exported: readers import them from here)
    StoredDocument,
    document_at,
    document_versions,
    erase_document,
)
from hub.documents.types import DocumentType
from hub.errors import BadInput, Conflict, HubError, NotFound
from hub.ledger.sequencer import Sequencer, Staged
from hub.ledger.storage import SignedHead
from hub.ledger.tree import leaf_hash
from hub.store.db import Database, Sql

CREATED, DUPLICATE, REJECTED = "CREATED", "DUPLICATE", "REJECTED"

_INSERT = (
    "INSERT INTO documents (issuer, type, doc_id, version, supersedes, status, subject, body,"
    " salt, digest, issued_at, leaf_index, created_at, type_version)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_BIND_CODE = "INSERT INTO bill_codes (code, institution, assigned, created_at) VALUES (?, ?, ?, ?)"


@dataclass(frozen=True)
class DocumentInput:
    type: str
    id: str
    body: object
    issued_at: str | None = None
    supersedes: int | None = None
    signature: str | None = None


@dataclass
class SubmitOutcome:
    id: str
    status: str
    version: int | None = None
    leaf_index: int | None = None
    leaf_hash: bytes | None = None
    error: HubError | None = None


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
    candidates: list[Candidate]
    results: dict[int, SubmitOutcome] = field(default_factory=dict)
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
            if c.unique and owners.get((c.type, c.id), self.issuer) != self.issuer:
                self.results[c.position] = SubmitOutcome(
                    c.id,
                    REJECTED,
                    error=Conflict(
                        f"id: a {c.type} with this id was issued by another institution;"
                        " printed codes name one document"
                        + (
                            f", and bill code {c.bind_code} is that institution's"
                            if c.bind_code is not None
                            else ""
                        )
                    ),
                )
                continue
            if c.bind_code is not None and codes.get(c.bind_code, self.issuer) != self.issuer:
                self.results[c.position] = SubmitOutcome(
                    c.id,
                    REJECTED,
                    error=BadInput(
                        f"body.billCode: {c.bind_code} is another institution's bill code;"
                        " use one of this institution's"
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
                    self.results[c.position] = SubmitOutcome(
                        c.id,
                        REJECTED,
                        error=BadInput(
                            f"supersedes: version {c.supersedes} of this document does not exist"
                        ),
                    )
                    continue
                if previous.status == "reversed":
                    self.results[c.position] = SubmitOutcome(
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
            self.results[c.position] = SubmitOutcome(c.id, CREATED, c.version, index, c.leaf_hash)
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

    def _repeat(self, c: Candidate, found: _Existing) -> SubmitOutcome:
        if found.body is None:
            return SubmitOutcome(
                c.id,
                REJECTED,
                error=Conflict(
                    f"version {c.version} of this document was erased and cannot be resubmitted"
                ),
            )
        if found.body != c.body:
            return SubmitOutcome(
                c.id,
                REJECTED,
                error=Conflict(
                    f"version {c.version} of this document exists with a different body;"
                    " submit a new version that supersedes it"
                ),
            )
        return SubmitOutcome(c.id, DUPLICATE, c.version, found.leaf_index, found.leaf_hash)


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
        rows = await self.db.fetch(
            f"SELECT kind, signatures_required, ({NEWEST_TYPE}) FROM institutions WHERE id = ?",
            [issuer],
        )
        if not rows:
            raise NotFound("the submitting institution is not registered")
        keys = await self.db.fetch(
            "SELECT public_key FROM issuer_keys WHERE institution_id = ? AND revoked_at IS NULL",
            [issuer],
        )
        kind = str(rows[0][0])
        codes: list[Sequence[Any]] = []
        if kind == "hospital":
            codes = await self.db.fetch(
                "SELECT code, assigned FROM bill_codes WHERE institution = ?", [issuer]
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
    ) -> tuple[list[SubmitOutcome], SignedHead]:
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
        results: dict[int, SubmitOutcome] = {}
        batch = DocumentBatch(issuer, [])
        for position, doc in enumerate(documents):
            if position and position % _PREPARE_SLICE == 0:
                # Let the sequencer's database round trips in between: a whole batch
                # validated in one go would hold each of them up by milliseconds.
                await asyncio.sleep(0)
            try:
                candidate = prepare(doc, policy, types)
            except HubError as exc:
                results[position] = SubmitOutcome(str(doc.id), REJECTED, error=exc)
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
