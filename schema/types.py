"""GraphQL types (DESIGN.md, "Public contract"). Hashes are standard base64."""

import base64
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from hub.access.access_log import AccessRecord, access_events
from hub.access.documents import DocRow
from hub.access.grants import Grant as GrantRecord
from hub.access.views import (
    FINANCIAL,
    FINANCIAL_FIELDS,
    FULL,
    SUMMARY,
    SUMMARY_FIELDS,
    SUMMARY_TOTALS,
    project,
)
from hub.access.visibility import Access
from hub.documents.types import DocumentType as TypeDefinition
from hub.errors import BadInput
from hub.institutions import InstitutionRecord
from hub.ledger.receipt import Receipt, format_receipt
from hub.ledger.storage import SignedHead
from hub.ledger.tree import leaf_hash
from hub.witness.cosignatures import (
    cosigned_note,
    meets_quorum,
    newest_witnessed,
    policy_cosignatures,
    rfc3339,
)
from schema.claims import DocumentClaims
from schema.limits import MAX_ACCESS_EVENTS
from schema.permissions import context


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@strawberry.enum
class DocumentStatus(Enum):
    ISSUED = "issued"
    REVERSED = "reversed"
    ERASED = "erased"


# Built from hub.access.views' field lists, so what the schema says is what a view shows.
_VIEW = (
    "How much of a document body a reader sees. The issuing hospital and the patient see"
    " FULL; an agency sees the widest view its active grants for the document allow. A"
    " Document's own fields (id, type, issuer, version, status, digest, leafIndex, issuedAt)"
    " show in every view; a field missing from a body stays missing."
)
_FULL = "The whole body, and the salt (which proves the commitment)"
_FINANCIAL = (
    f"Body fields {', '.join(FINANCIAL_FIELDS)} (all of totals: the total and every"
    " payment) only; no items, visit, payer, patientRef or checkCode; no salt"
)
_SUMMARY = (
    f"Body fields {', '.join(SUMMARY_FIELDS)}, "
    + ", ".join(f"totals.{name}" for name in SUMMARY_TOTALS)
    + " only; no salt"
)


@strawberry.enum(description=_VIEW)
class View(Enum):
    FULL = strawberry.enum_value(FULL, description=_FULL)
    FINANCIAL = strawberry.enum_value(FINANCIAL, description=_FINANCIAL)
    SUMMARY = strawberry.enum_value(SUMMARY, description=_SUMMARY)


_VIEWS = {FULL: View.FULL, FINANCIAL: View.FINANCIAL, SUMMARY: View.SUMMARY}


@strawberry.enum
class SubmitStatus(Enum):
    CREATED = "CREATED"
    DUPLICATE = "DUPLICATE"
    REJECTED = "REJECTED"


@strawberry.type(description="A witness's C2SP tlog-cosignature on a checkpoint")
class Cosignature:
    witness: str = strawberry.field(description="The witness's key name")
    at: str = strawberry.field(description="When the witness cosigned, RFC 3339")


@strawberry.type
class Checkpoint:
    origin: str
    tree_size: int
    root_hash: str = strawberry.field(description="Merkle root, standard base64")
    note: str = strawberry.field(description="The C2SP tlog-checkpoint signed note, verbatim")

    @strawberry.field(description="Cosignatures of the policy's witnesses on this checkpoint")
    async def cosignatures(self, info: Info) -> list[Cosignature]:
        found = await policy_cosignatures(context(info).hub, self.tree_size)
        return [Cosignature(witness=c.witness, at=rfc3339(c.at)) for c in found]

    @strawberry.field(description="Whether its cosignatures meet the witness policy's quorum")
    async def witnessed(self, info: Info) -> bool:
        return await meets_quorum(context(info).hub, self.tree_size)

    @classmethod
    def of(cls, head: SignedHead) -> "Checkpoint":
        return cls(
            origin=head.note.split("\n", 1)[0],
            tree_size=head.size,
            root_hash=b64(head.root),
            note=head.note,
        )


@strawberry.type
class InclusionProof:
    leaf_index: int
    tree_size: int
    leaf_hash: str
    leaf_data: str = strawberry.field(description="The leaf data, standard base64")
    hashes: list[str]
    checkpoint: Checkpoint
    receipt: str = strawberry.field(
        description="C2SP tlog-proof@v1 text; its extra line is the leaf data"
    )


@strawberry.type
class ConsistencyProof:
    from_size: int
    to_size: int
    hashes: list[str]


async def inclusion_proof(info: Info, index: int, data: bytes, size: int | None) -> InclusionProof:
    ctx = context(info)
    hub = ctx.hub
    head = await ctx.head(size, covering=index)
    if head is None:
        raise BadInput("treeSize: the log signed no checkpoint of this size")
    if index >= head.size:
        raise BadInput("treeSize: must be larger than the leaf index")
    if size is None and hub.policy is not None:
        # The newest checkpoint the witnesses cosigned, when it covers the leaf: a receipt
        # a verifier holding the policy accepts offline.
        witnessed = await newest_witnessed(hub.db, hub.policy)
        head = witnessed if witnessed is not None and witnessed.size > index else head
    hashes = await hub.tiles.inclusion_proof(index, head.size)
    note = await cosigned_note(hub, head)
    receipt = format_receipt(Receipt(index, tuple(hashes), note, extra=data))
    return InclusionProof(
        leaf_index=index,
        tree_size=head.size,
        leaf_hash=b64(leaf_hash(data)),
        leaf_data=b64(data),
        hashes=[b64(h) for h in hashes],
        checkpoint=Checkpoint.of(head),
        receipt=receipt,
    )


@strawberry.type
class Institution:
    id: strawberry.ID
    name: str
    kind: str
    signatures_required: bool
    record: strawberry.Private[InstitutionRecord]

    @classmethod
    def of(cls, r: InstitutionRecord) -> "Institution":
        return cls(
            id=strawberry.ID(r.id),
            name=r.name,
            kind=r.kind,
            signatures_required=r.signatures_required,
            record=r,
        )

    @strawberry.field(
        description="The medical-invoice bill codes that belong to it (admins only; null"
        " for anyone else)"
    )
    def bill_codes(self, info: Info) -> list[str] | None:
        principal = context(info).principal
        if principal is None or principal.role != "admin":
            return None
        return list(self.record.bill_codes)


@strawberry.type
class TypeView:
    name: str
    fields: list[str] = strawberry.field(description="JSON Pointers of the fields it shows")


@strawberry.type(description="A registered version of a document type (public)")
class DocumentType:
    name: str
    version: int
    title: JSON = strawberry.field(description="By language: {en, zh}")
    issuer_kinds: list[str]
    views: list[TypeView] = strawberry.field(description="Every view but full, which always exists")
    digest: str = strawberry.field(description="SHA-256 of the definition's JCS, standard base64")
    leaf_index: int | None = strawberry.field(
        description="Its `type` leaf; null for a definition shipped with the hub and not"
        " registered in this log yet"
    )
    definition: JSON

    @classmethod
    def of(cls, t: TypeDefinition) -> "DocumentType":
        return cls(
            name=t.name,
            version=t.version,
            title=cast(JSON, t.title),
            issuer_kinds=list(t.issuer_kinds),
            views=[
                TypeView(
                    name=name,
                    fields=[
                        "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in tokens)
                        for tokens in pointers
                    ],
                )
                for name, pointers in t.views.items()
            ],
            digest=b64(t.digest),
            leaf_index=t.leaf_index,
            definition=cast(JSON, t.definition),
        )


@strawberry.type
class Document(DocumentClaims):
    """One version of a document, as far as the caller may see it."""

    id: strawberry.ID
    type: str
    issuer: str
    version: int
    status: DocumentStatus
    digest: str
    leaf_index: int
    issued_at: str
    type_version: int = strawberry.field(
        description="The version of its type this document was validated under"
    )
    view_name: str = strawberry.field(
        description="The view of the body the caller sees: full, or a view of its type"
    )
    view: View | None = strawberry.field(
        description="view_name as the View enum where it is one of those; null otherwise"
    )
    row: strawberry.Private[DocRow]
    access: strawberry.Private[Access]
    # Found by its printed codes (`invoice`): the holder of the paper may see who read it.
    by_codes: strawberry.Private[bool] = False

    @classmethod
    def of(cls, row: DocRow, access: Access, *, by_codes: bool = False) -> "Document":
        d = row.doc
        return cls(
            id=strawberry.ID(d.id),
            type=d.type,
            issuer=d.issuer,
            version=d.version,
            status=DocumentStatus(d.status),
            digest=b64(d.digest),
            leaf_index=d.leaf_index,
            issued_at=d.issued_at,
            type_version=d.type_version,
            view_name=access.view,
            view=_VIEWS.get(access.view),
            row=row,
            access=access,
            by_codes=by_codes,
        )

    @strawberry.field(
        graphql_type=JSON | None, description="The body in the caller's view; null once erased"
    )
    def body(self, info: Info) -> Any:
        # A value when no read needs recording (or a page recorded its reads already), so
        # a page of bodies completes without a coroutine per node; otherwise a coroutine.
        body = self.row.doc.body
        if body is None:
            return None
        purpose = self.access.purpose
        ctx = context(info)
        view = self.access.view
        doc_type = None
        if view != FULL:
            doc_type = ctx.hub.types.latest(self.type)
            if doc_type is None or view not in doc_type.views:
                return self._read_under_grant(info, body, purpose)
        if purpose is not None and (self.row.pk, purpose) not in ctx.reads_on_ledger:
            return self._read_under_grant(info, body, purpose)
        return project(body, view, doc_type)

    async def _read_under_grant(
        self, info: Info, body: dict[str, Any], purpose: str | None
    ) -> JSON:
        # A read under a grant: on the ledger before the body leaves the hub. A view this
        # process does not know yet is in a type version registered elsewhere: read it.
        ctx = context(info)
        doc_type = None
        if self.access.view != FULL:
            doc_type = (await ctx.hub.types.refresh()).latest(self.type)
        if purpose is not None and (self.row.pk, purpose) not in ctx.reads_on_ledger:
            ctx.rows[self.row.pk] = self.row
            await ctx.access.load((self.row.pk, purpose))
        return cast(JSON, project(body, self.access.view, doc_type))

    @strawberry.field(description="The commitment salt, standard base64; full view only")
    def salt(self) -> str | None:
        salt = self.row.doc.salt
        return b64(salt) if salt is not None and self.access.view == FULL else None

    @strawberry.field
    async def institution(self, info: Info) -> Institution | None:
        record = await context(info).institutions.load(self.row.doc.issuer)
        return Institution.of(record) if record else None

    @strawberry.field(description="Proof that this version is in the log")
    async def inclusion_proof(self, info: Info, tree_size: int | None = None) -> InclusionProof:
        return await inclusion_proof(info, self.leaf_index, self.row.doc.leaf_data, tree_size)

    @strawberry.field(
        description="Who read this document (any version), oldest first; only on a document"
        " looked up by its printed codes (invoice), null otherwise (see accessLog)"
    )
    async def access_events(self, info: Info) -> list["AccessEvent"] | None:
        if not self.by_codes:
            return None
        d = self.row.doc
        records = await access_events(
            context(info).hub.db,
            where=("d.issuer = ? AND d.type = ?", [d.issuer, d.type]),
            doc_id=d.id,
            limit=MAX_ACCESS_EVENTS,
        )
        return [AccessEvent.of(r) for r in records]


@strawberry.type
class DocumentEdge:
    cursor: str
    node: Document


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class DocumentConnection:
    edges: list[DocumentEdge]
    page_info: PageInfo
    # Counting every match costs far more than a page at a million documents: only on request.
    counter: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field
    async def total_count(self) -> int:
        return await self.counter()


@strawberry.input
class DocumentFilter:
    type: str | None = None
    issuer: str | None = None
    status: DocumentStatus | None = None
    issued_from: str | None = strawberry.field(default=None, description="YYYY-MM-DD, inclusive")
    issued_to: str | None = strawberry.field(default=None, description="YYYY-MM-DD, inclusive")


@strawberry.input
class DocumentInput:
    type: str
    id: strawberry.ID
    body: JSON
    issued_at: str | None = None
    supersedes: int | None = strawberry.field(
        default=None, description="The version this one replaces"
    )
    signature: str | None = strawberry.field(
        default=None, description="base64 Ed25519 signature of JCS(body)"
    )


@strawberry.type
class ErrorInfo:
    code: str
    message: str


@strawberry.type
class SubmitResult:
    id: strawberry.ID
    status: SubmitStatus
    version: int | None
    leaf_index: int | None
    leaf_hash: str | None
    error: ErrorInfo | None


@strawberry.type
class SubmitDocumentsPayload:
    results: list[SubmitResult]
    checkpoint: Checkpoint


@strawberry.type
class AccessEvent:
    agency: str
    document_id: strawberry.ID
    issuer: str
    type: str
    version: int
    purpose: str
    at: str
    leaf_index: int
    record: strawberry.Private[AccessRecord]

    @classmethod
    def of(cls, r: AccessRecord) -> "AccessEvent":
        return cls(
            agency=r.agency,
            document_id=strawberry.ID(r.doc_id),
            issuer=r.issuer,
            type=r.type,
            version=r.version,
            purpose=r.purpose,
            at=r.at,
            leaf_index=r.leaf_index,
            record=r,
        )

    @strawberry.field(description="Proof that this read is in the log")
    async def inclusion_proof(self, info: Info, tree_size: int | None = None) -> InclusionProof:
        return await inclusion_proof(info, self.leaf_index, self.record.leaf_data, tree_size)


@strawberry.type
class AccessEventEdge:
    cursor: str
    node: AccessEvent


@strawberry.type
class AccessEventConnection:
    edges: list[AccessEventEdge]
    page_info: PageInfo
    counter: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field
    async def total_count(self) -> int:
        return await self.counter()


@strawberry.type
class Grant:
    id: strawberry.ID
    agency: str
    type: str
    issuers: list[str]
    view: View | None = strawberry.field(
        description="view_name as the View enum where it is one of those; null otherwise"
    )
    view_name: str
    purpose: str
    valid_from: str
    valid_until: str | None
    revoked_at: str | None
    leaf_index: int
    active: bool
    claims: bool = strawberry.field(description="Whether the grant lets the agency claim")

    @classmethod
    def of(cls, g: GrantRecord, active: bool) -> "Grant":
        return cls(
            id=strawberry.ID(g.id),
            agency=g.agency,
            type=g.type,
            issuers=list(g.issuers),
            view=_VIEWS.get(g.view),
            view_name=g.view,
            purpose=g.purpose,
            valid_from=g.valid_from,
            valid_until=g.valid_until,
            revoked_at=g.revoked_at,
            leaf_index=g.leaf_index,
            active=active,
            claims=g.claims,
        )
