"""Mutation resolvers: hospitals submit; the admin manages institutions, keys and grants."""

import base64
import binascii
from datetime import date, timedelta
from typing import Annotated

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from hub.access.grants import create_grant, revoke_grant
from hub.documents.registry import register_type
from hub.documents.store import erase_document
from hub.errors import BadInput, Forbidden, NotFound
from hub.institutions import add_institution, add_issuer_key
from schema.claims import ClaimMutations
from schema.limits import MAX_BATCH
from schema.permissions import ADMIN, AGENCY, HOSPITAL, context, require
from schema.types import (
    Checkpoint,
    DocumentInput,
    DocumentType,
    ErrorInfo,
    Grant,
    Institution,
    SubmitDocumentsPayload,
    SubmitResult,
    SubmitStatus,
    View,
    b64,
)

# "until" is the last day a grant holds: the midnight after it must still be a date.
LAST_UNTIL = date.max - timedelta(days=1)


def _check_until(until: str | None) -> None:
    if until is None:
        return
    try:
        day = date.fromisoformat(until[:10])
    except ValueError:
        return  # not a date at all: create_grant says what it must be
    if day > LAST_UNTIL:
        raise BadInput(f"until: must be {LAST_UNTIL.isoformat()} or earlier")


def _public_key(text: str) -> bytes:
    """PEM text, or the raw 32-byte key in standard base64."""
    if "BEGIN" in text:
        return text.encode()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadInput("publicKey: PEM text or base64 of the raw 32-byte Ed25519 key") from None
    if len(raw) != 32:
        raise BadInput("publicKey: a raw Ed25519 key is 32 bytes")
    return raw


@strawberry.type
class Mutation(ClaimMutations):
    @strawberry.mutation(
        description="Anchor documents as the token's institution (a hospital, or an agency of"
        " a kind the document's type lists); one result per input, in order"
    )
    async def submit_documents(
        self, info: Info, documents: list[DocumentInput]
    ) -> SubmitDocumentsPayload:
        principal = require(info, HOSPITAL, AGENCY)
        if len(documents) > MAX_BATCH:  # the Guard refuses these before execution, too
            raise BadInput(f"documents: at most {MAX_BATCH} documents per request")
        assert principal.inst is not None
        try:
            results, head = await context(info).hub.documents.submit(principal.inst, documents)
        except NotFound:
            if principal.role == AGENCY:  # an agency that issues nothing is a reader only
                raise Forbidden("this institution issues no registered document type") from None
            raise
        return SubmitDocumentsPayload(
            results=[
                SubmitResult(
                    id=strawberry.ID(r.id),
                    status=SubmitStatus(r.status),
                    version=r.version,
                    leaf_index=r.leaf_index,
                    leaf_hash=b64(r.leaf_hash) if r.leaf_hash is not None else None,
                    error=ErrorInfo(code=r.error.code, message=r.error.message)
                    if r.error is not None
                    else None,
                )
                for r in results
            ],
            checkpoint=Checkpoint.of(head),
        )

    @strawberry.mutation
    async def add_institution(
        self,
        info: Info,
        id: strawberry.ID,
        name: str,
        kind: str,
        signatures_required: bool = False,
        bill_codes: Annotated[
            list[str] | None,
            strawberry.argument(description="Medical-invoice bill codes assigned to it"),
        ] = None,
    ) -> Institution:
        require(info, ADMIN)
        record = await add_institution(
            context(info).hub.db,
            str(id),
            name,
            kind,
            signatures_required=signatures_required,
            bill_codes=bill_codes or (),
        )
        return Institution.of(record)

    @strawberry.mutation(
        description="Register a document type version from its definition (a `type` leaf);"
        " the same definition again answers the one registered"
    )
    async def register_document_type(self, info: Info, definition: JSON) -> DocumentType:
        require(info, ADMIN)
        hub = context(info).hub
        registered, _ = await register_type(hub.types, hub.sequencer, definition)
        return DocumentType.of(registered)

    @strawberry.mutation(description="Register an Ed25519 key a hospital signs bodies with")
    async def add_issuer_key(self, info: Info, institution: strawberry.ID, public_key: str) -> bool:
        require(info, ADMIN)
        await add_issuer_key(context(info).hub.db, str(institution), _public_key(public_key))
        return True

    @strawberry.mutation
    async def add_grant(
        self,
        info: Info,
        agency: strawberry.ID,
        type: str,
        issuers: list[str],
        purpose: str,
        view: View | None = None,
        until: str | None = None,
        view_name: Annotated[
            str | None,
            strawberry.argument(description="Any view of the type by name; instead of view"),
        ] = None,
        claims: bool = False,
    ) -> Grant:
        require(info, ADMIN)
        ctx = context(info)
        if (view is None) == (view_name is None):
            raise BadInput("view: give exactly one of view and viewName")
        _check_until(until)
        grant = await create_grant(
            ctx.hub,
            agency=str(agency),
            type=type,
            issuers=issuers,
            # A str at run time; mypy sees the enum_value().
            view=str(view.value) if view is not None else str(view_name),
            purpose=purpose,
            until=until,
            now=ctx.now(),
            claims=claims,
        )
        return Grant.of(grant, grant.active(ctx.now()))

    @strawberry.mutation
    async def revoke_grant(self, info: Info, id: strawberry.ID) -> Grant:
        require(info, ADMIN)
        ctx = context(info)
        grant = await revoke_grant(ctx.hub, str(id), ctx.now())
        return Grant.of(grant, False)

    @strawberry.mutation(
        description="Legal erasure: destroy a version's body and salt; its leaf and proofs stay"
    )
    async def erase_document(
        self, info: Info, issuer: strawberry.ID, type: str, id: strawberry.ID, version: int
    ) -> bool:
        require(info, ADMIN)
        await erase_document(context(info).hub.db, str(issuer), type, str(id), version)
        return True
