"""Query resolvers.

Addressing: ``document(id)`` and ``inclusionProof(documentId)`` take the document id
(for an invoice ``<billCode>-<billNumber>``). Ids are unique per issuer and type, so
among the documents with that id the caller can see, the hub picks a medical invoice
before other types, then the lowest issuer id, and returns its latest version the caller
can see; ``type``, ``issuer`` and ``version`` arguments narrow the choice.
"""

import base64
import binascii
import hmac
import re
from datetime import date
from typing import Any

import strawberry
from strawberry.types import Info
from strawberry.types.nodes import SelectedField, Selection

from hub.access import documents as docs
from hub.access.access_log import access_events, count_access_events, record_reads
from hub.access.grants import list_grants
from hub.access.visibility import Access
from hub.documents.invoice import INVOICE_TYPE
from hub.documents.pointers import resolve
from hub.documents.types import TYPE_NAME
from hub.errors import BadInput, NotFound
from hub.institutions import list_institutions
from hub.ledger.storage import read_checkpoint
from schema.claims import ClaimQueries
from schema.context import Context
from schema.limits import DEFAULT_PAGE, MAX_ACCESS_EVENTS, MAX_PAGE
from schema.permissions import (
    ACCESS_LOG_READERS,
    AGENCY,
    DOCUMENT_READERS,
    GRANT_READERS,
    context,
    require,
)
from schema.types import (
    AccessEvent,
    AccessEventConnection,
    AccessEventEdge,
    Checkpoint,
    ConsistencyProof,
    Document,
    DocumentConnection,
    DocumentEdge,
    DocumentFilter,
    DocumentType,
    Grant,
    InclusionProof,
    Institution,
    PageInfo,
    b64,
    inclusion_proof,
)

_BILL_CODE = re.compile(r"[0-9]{8}")
_BILL_NUMBER = re.compile(r"[0-9]{10}")
_CHECK_CODE = re.compile(r"[0-9A-Za-z]{6}")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_ANY_CHECK_CODE = re.compile(r"[0-9A-Za-z]{1,64}")
# One answer for "does not exist" and "exists but not yours", word for word.
NOT_FOUND_MESSAGE = "no such document"


async def find_visible(
    info: Info,
    doc_id: str,
    doc_type: str | None = None,
    issuer: str | None = None,
    version: int | None = None,
) -> Document:
    ctx = context(info)
    scope = await ctx.scope()
    # Invoices rank first, so without a type asked for, look among invoices alone before
    # all types: one index seek, where all types take one per stored type.
    for looked_up in (doc_type,) if doc_type is not None else (INVOICE_TYPE, None):
        best: tuple[tuple[bool, str, str], docs.DocRow, Access] | None = None
        for row in await docs.with_id(ctx.hub.db, doc_id, looked_up):
            d = row.doc
            if issuer is not None and d.issuer != issuer:
                continue
            if version is not None and d.version != version:
                continue
            access = scope.access(d.issuer, d.type, d.subject)
            if access is None:
                continue
            rank = (d.type != INVOICE_TYPE, d.issuer, d.type)
            # Rows come oldest first within a document: on a tie the later version wins.
            if best is None or rank <= best[0]:
                best = (rank, row, access)
        if best is not None:
            return Document.of(best[1], best[2])
    raise NotFound(NOT_FOUND_MESSAGE)


def _asks_for_node_body(selections: list[Selection], path: tuple[str, ...] = ()) -> bool:
    """Whether ``documents { edges { node { body } } }`` is asked for, unconditionally.

    A field under @skip/@include is left to the body's own resolver, which records the
    read only when it runs.
    """
    want = ("documents", "edges", "node", "body")
    for selection in selections:
        if selection.directives:
            continue
        if isinstance(selection, SelectedField):
            here = (*path, selection.name)
            if here != want[: len(here)]:
                continue
            if here == want or _asks_for_node_body(selection.selections, here):
                return True
        elif _asks_for_node_body(selection.selections, path):
            return True
    return False


def _cursor(leaf_index: int) -> str:
    return base64.urlsafe_b64encode(f"leaf:{leaf_index}".encode()).decode()


# Leaf indexes are 64-bit in the database; a cursor past that was never handed out.
_MAX_LEAF = 2**63 - 1


async def _count_access_events(ctx: Context, where: dict[str, Any] | None) -> int:
    return 0 if where is None else await count_access_events(ctx.hub.db, **where)


def _after(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        number = text.removeprefix("leaf:")
        digits = text.startswith("leaf:") and number.isdigit() and len(number) <= 19
        if digits and int(number) <= _MAX_LEAF:
            return int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise BadInput("after: not a cursor from this API")


def _date(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except (ValueError, TypeError):
        raise BadInput(f"{name}: must be a date YYYY-MM-DD") from None


async def _access_where(info: Info, document_id: strawberry.ID | None) -> dict[str, Any] | None:
    """Which access events the caller may see: an agency its own reads, a hospital or
    patient the reads of its documents, an auditor all; None: none at all."""
    principal = require(info, *ACCESS_LOG_READERS)
    ctx = context(info)
    found: dict[str, Any] = {"doc_id": None if document_id is None else str(document_id)}
    if principal.role == AGENCY:
        found["agency"] = principal.inst
    elif principal.role in ("hospital", "patient"):
        where = (await ctx.scope()).sql("d.")
        # A patient token without inst, while no type has a national subject, sees none.
        if where is None:
            return None
        found["where"] = where
    return found


async def by_printed_codes(
    info: Info, doc_type: str, doc_id: str, check_code: str, tokens: tuple[str, ...] | None
) -> Document:
    """The document ``doc_id`` of ``doc_type`` whose check code (at ``tokens``) is
    ``check_code``; a wrong code answers like a missing id, and counts as a miss."""
    ctx = context(info)
    if ctx.principal is not None:
        require(info, *DOCUMENT_READERS)  # admins, auditors, witnesses: never bodies
    limiter = ctx.guards.invoice_lookups
    limiter.check(ctx.client)
    rows = await docs.with_id(ctx.hub.db, doc_id, doc_type) if tokens is not None else []
    matched: dict[str, docs.DocRow] = {}
    latest: dict[str, docs.DocRow] = {}
    for row in rows:
        latest[row.doc.issuer] = row  # oldest first, so the last one wins
        code = resolve(row.doc.body or {}, tokens or ())
        if isinstance(code, str) and hmac.compare_digest(code.encode(), check_code.encode()):
            matched[row.doc.issuer] = row
    access: Access | None = Access("full", None)
    if matched and ctx.principal is not None:
        # With a token the caller is answered as who it is: an agency reads through
        # its grant (view and access leaf), a hospital or patient only what is theirs.
        found = latest[min(matched)].doc
        access = (await ctx.scope()).access(found.issuer, found.type, found.subject)
    if not matched or access is None:
        limiter.miss(ctx.client)
        raise NotFound(NOT_FOUND_MESSAGE)
    issuer = min(matched)
    # The holder of the paper (or its owner) may see who read it; an agency may not.
    return Document.of(latest[issuer], access, by_codes=access.purpose is None)


@strawberry.type
class Query(ClaimQueries):
    @strawberry.field(description="The log's latest signed checkpoint (no token needed)")
    async def checkpoint(self, info: Info) -> Checkpoint:
        head = await context(info).head()
        assert head is not None  # Hub.start signs the empty tree
        return Checkpoint.of(head)

    @strawberry.field
    async def document(
        self,
        info: Info,
        id: strawberry.ID,
        type: str | None = None,
        issuer: str | None = None,
        version: int | None = None,
    ) -> Document:
        require(info, *DOCUMENT_READERS)
        return await find_visible(info, str(id), type, issuer, version)

    @strawberry.field
    async def documents(
        self,
        info: Info,
        filter: DocumentFilter | None = None,
        first: int = DEFAULT_PAGE,
        after: str | None = None,
    ) -> DocumentConnection:
        require(info, *DOCUMENT_READERS)
        if not 1 <= first <= MAX_PAGE:
            raise BadInput(f"first: must be between 1 and {MAX_PAGE}")
        f = filter or DocumentFilter()
        flt = docs.DocumentFilter(
            type=f.type,
            issuer=f.issuer,
            status=f.status.value if f.status else None,
            issued_from=_date(f.issued_from, "issuedFrom"),
            issued_to=_date(f.issued_to, "issuedTo"),
        )
        ctx = context(info)
        scope = await ctx.scope()
        rows, more = await docs.page(ctx.hub.db, scope, flt, _after(after), first)
        edges = []
        reads: list[tuple[docs.DocRow, str]] = []
        for row in rows:
            access = scope.access(row.doc.issuer, row.doc.type, row.doc.subject)
            assert access is not None  # the page query applied the same scope
            edges.append(
                DocumentEdge(cursor=_cursor(row.doc.leaf_index), node=Document.of(row, access))
            )
            if access.purpose is not None and row.doc.body_text is not None:
                reads.append((row, access.purpose))
        if reads and _asks_for_node_body(info.selected_fields):
            # The page's reads in one submission, before any body is written out; each
            # node's body then completes at once.
            assert ctx.principal is not None and ctx.principal.inst is not None
            indexes = await record_reads(ctx.hub, ctx.principal.inst, reads, ctx.now())
            for (row, purpose), index in zip(reads, indexes, strict=True):
                ctx.reads_on_ledger[(row.pk, purpose)] = index
        end = edges[-1].cursor if edges else None
        return DocumentConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=more, end_cursor=end),
            counter=lambda: docs.count(ctx.hub.db, scope, flt),
        )

    @strawberry.field(
        description="A medical invoice by the codes printed on it; no token needed. With a"
        " token it is answered as that principal (an agency through its grant). Repeated"
        " misses from one client are slowed down and then locked out."
    )
    async def invoice(
        self, info: Info, bill_code: str, bill_number: str, check_code: str
    ) -> Document:
        if not (
            _BILL_CODE.fullmatch(bill_code)
            and _BILL_NUMBER.fullmatch(bill_number)
            and _CHECK_CODE.fullmatch(check_code)
        ):
            raise BadInput(
                "billCode is 8 digits, billNumber 10 digits, checkCode 6 letters or digits"
            )
        return await by_printed_codes(
            info, INVOICE_TYPE, f"{bill_code}-{bill_number}", check_code, ("checkCode",)
        )

    @strawberry.field(
        description="A document of any type with a check code, by its id and check code;"
        " no token needed. Answered as `invoice` is: the holder of the printed codes sees"
        " the whole body and salt, and repeated misses are slowed down, then locked out."
    )
    async def lookup(self, info: Info, type: str, id: strawberry.ID, check_code: str) -> Document:
        doc_id = str(id)
        if not (
            TYPE_NAME.fullmatch(type)
            and _ID.fullmatch(doc_id)
            and _ANY_CHECK_CODE.fullmatch(check_code)
        ):
            raise BadInput("type is a type name, id a document id, checkCode letters or digits")
        found = (await context(info).hub.types.refresh()).latest(type)
        tokens = found.check_code if found is not None else None
        return await by_printed_codes(info, type, doc_id, check_code, tokens)

    @strawberry.field(description="Every registered version of every document type (public)")
    async def document_types(self, info: Info) -> list[DocumentType]:
        registry = await context(info).hub.types.refresh()
        return [DocumentType.of(t) for t in registry.all()]

    @strawberry.field
    async def inclusion_proof(
        self, info: Info, document_id: strawberry.ID, tree_size: int | None = None
    ) -> InclusionProof:
        require(info, *DOCUMENT_READERS)
        doc = await find_visible(info, str(document_id))
        return await inclusion_proof(info, doc.leaf_index, doc.row.doc.leaf_data, tree_size)

    @strawberry.field(description="Proof that the log of toSize extends the log of fromSize")
    async def consistency_proof(
        self, info: Info, from_size: int, to_size: int | None = None
    ) -> ConsistencyProof:
        hub = context(info).hub
        head = await read_checkpoint(hub.db)
        assert head is not None
        to = head.size if to_size is None else to_size
        if not 1 <= from_size <= to <= head.size:
            raise BadInput(f"need 1 <= fromSize <= toSize <= {head.size} (the current size)")
        hashes = await hub.tiles.consistency_proof(from_size, to) if from_size < to else []
        return ConsistencyProof(from_size=from_size, to_size=to, hashes=[b64(h) for h in hashes])

    @strawberry.field(
        description="Who read documents, oldest first (at most 500; accessLogConnection"
        " pages through all): a patient sees reads of their own"
    )
    async def access_log(
        self, info: Info, document_id: strawberry.ID | None = None
    ) -> list[AccessEvent]:
        ctx = context(info)
        where = await _access_where(info, document_id)
        if where is None:
            return []
        return [
            AccessEvent.of(r)
            for r in await access_events(ctx.hub.db, **where, limit=MAX_ACCESS_EVENTS)
        ]

    @strawberry.field(
        description="accessLog as a connection: every event, a page at a time, oldest first"
    )
    async def access_log_connection(
        self,
        info: Info,
        document_id: strawberry.ID | None = None,
        first: int = DEFAULT_PAGE,
        after: str | None = None,
    ) -> AccessEventConnection:
        if not 1 <= first <= MAX_PAGE:
            raise BadInput(f"first: must be between 1 and {MAX_PAGE}")
        ctx = context(info)
        where = await _access_where(info, document_id)
        records = (
            []
            if where is None
            else await access_events(ctx.hub.db, **where, limit=first + 1, after=_after(after))
        )
        edges = [
            AccessEventEdge(cursor=_cursor(r.leaf_index), node=AccessEvent.of(r))
            for r in records[:first]
        ]
        end = edges[-1].cursor if edges else None
        return AccessEventConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=len(records) > first, end_cursor=end),
            counter=lambda: _count_access_events(ctx, where),
        )

    @strawberry.field(description="Grants: an agency sees its own; admin and auditor all")
    async def grants(self, info: Info) -> list[Grant]:
        principal = require(info, *GRANT_READERS)
        ctx = context(info)
        agency = principal.inst if principal.role == AGENCY else None
        now = ctx.now()
        return [Grant.of(g, g.active(now)) for g in await list_grants(ctx.hub.db, agency)]

    @strawberry.field
    async def institutions(self, info: Info) -> list[Institution]:
        require(info)
        return [Institution.of(r) for r in await list_institutions(context(info).hub.db)]
