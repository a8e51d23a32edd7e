"""Mutation resolvers: hospitals submit; the admin manages institutions, keys and grants."""

import base64
import binascii
from datetime import date, timedelta

import strawberry
from strawberry.types import Info

from hub.access.grants import create_grant, revoke_grant
from hub.documents.service import erase_document
from hub.errors import BadInput
from hub.institutions import add_institution, add_issuer_key
from schema.claims import ClaimMutations
from schema.limits import MAX_BATCH
from schema.permissions import ADMIN, HOSPITAL, context, require
from schema.types import (
    Checkpoint,
    DocumentInput,
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
        description="Anchor documents as the token's hospital; one result per input, in order"
    )
    async def submit_documents(
        self, info: Info, documents: list[DocumentInput]
    ) -> SubmitDocumentsPayload:
        principal = require(info, HOSPITAL)
        if len(documents) > MAX_BATCH:  # the Guard refuses these before execution, too
            raise BadInput(f"documents: at most {MAX_BATCH} documents per request")
        assert principal.inst is not None
        results, head = await context(info).hub.documents.submit(principal.inst, documents)
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
    ) -> Institution:
        require(info, ADMIN)
        record = await add_institution(
            context(info).hub.db, str(id), name, kind, signatures_required=signatures_required
        )
        return Institution.of(record)

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
        view: View,
        purpose: str,
        until: str | None = None,
        claims: bool = False,
    ) -> Grant:
        require(info, ADMIN)
        ctx = context(info)
        _check_until(until)
        grant = await create_grant(
            ctx.hub,
            agency=str(agency),
            type=type,
            issuers=issuers,
            view=str(view.value),  # a str at run time; mypy sees the enum_value()
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
