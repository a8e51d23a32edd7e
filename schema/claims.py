"""GraphQL for claims (DESIGN.md, "Claims"): the `Claim` type, `claims`, `claimDocument`,
`releaseClaim`, the `claimEvents` subscription and `Document { claimableAmount
claimedAmount claims }` (a base of `Document`). What a reader sees is hub.claims.sight's."""

import asyncio
from collections.abc import AsyncGenerator
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from hub.access.documents import DocRow
from hub.access.visibility import Access
from hub.claims.booking import book_claim, release_claim
from hub.claims.claimable import claimable_amount, money_text
from hub.claims.leaves import booking_leaf
from hub.claims.sight import NOTHING, ClaimSight, sight_for
from hub.claims.store import (
    ClaimRecord,
    claim_events,
    claimed_total,
    claims_on,
    list_claims,
)
from hub.claims.targets import find_target
from hub.errors import BadInput
from schema.limits import MAX_ACCESS_EVENTS
from schema.permissions import AGENCY, HOSPITAL, PATIENT, context, require
from schema.watcher import checkpoint_watcher

if TYPE_CHECKING:
    from schema.types import InclusionProof


@strawberry.enum(
    description="ACTIVE counts against the claimable amount; DISPUTED: the"
    " document was reversed (冲红) after the claim; RELEASED: undone (入账撤销)"
)
class ClaimStatus(Enum):
    ACTIVE = "active"
    RELEASED = "released"
    DISPUTED = "disputed"


@strawberry.type(description="A reimbursement claim booked against one document version")
class Claim:
    id: strawberry.ID
    document_id: strawberry.ID
    issuer: str
    type: str
    version: int
    agency: str
    amount: str = strawberry.field(description="Decimal string, two places")
    reference: str = strawberry.field(description="The agency's own case number")
    status: ClaimStatus
    at: str
    leaf_index: int = strawberry.field(description="The booking's `claim` leaf")
    released_at: str | None
    release_reason: str | None
    release_leaf_index: int | None
    record: strawberry.Private[ClaimRecord]
    holder: strawberry.Private[bool]

    @classmethod
    def of(cls, r: ClaimRecord, holder: bool, status: str | None = None) -> "Claim":
        return cls(
            id=strawberry.ID(r.id),
            document_id=strawberry.ID(r.doc_id),
            issuer=r.issuer,
            type=r.type,
            version=r.version,
            agency=r.agency,
            amount=r.amount,
            reference=r.reference,
            status=ClaimStatus(status or r.status),
            at=r.at,
            leaf_index=r.leaf_index,
            released_at=r.released_at,
            release_reason=r.release_reason,
            release_leaf_index=r.release_leaf_index,
            record=r,
            holder=holder,
        )

    @strawberry.field(
        description="The salt of the claim's leaves, standard base64; only to the claiming"
        " agency, which proves its claim with it (docs/claims.md)"
    )
    def salt(self) -> str | None:
        from schema.types import b64

        return b64(self.record.salt) if self.holder else None

    @strawberry.field(description="Proof that the booking is in the log")
    async def inclusion_proof(
        self, info: Info, tree_size: int | None = None
    ) -> Annotated["InclusionProof", strawberry.lazy("schema.types")]:
        from schema.types import inclusion_proof

        data = booking_leaf(self.record.fields, self.record.salt)
        return await inclusion_proof(info, self.leaf_index, data, tree_size)


def _claim(record: ClaimRecord, agency: str | None, status: str | None = None) -> Claim:
    return Claim.of(record, holder=agency is not None and record.agency == agency, status=status)


@strawberry.type
class DocumentClaims:
    """`Document`'s claim fields."""

    if TYPE_CHECKING:
        row: DocRow
        access: Access
        by_codes: bool

    async def _sight(self, info: Info) -> ClaimSight:
        ctx = context(info)
        d = self.row.doc
        if ctx.principal is not None and ctx.principal.role not in (AGENCY, PATIENT):
            return NOTHING
        grants = await ctx.agency_grants()
        return sight_for(ctx.principal, grants, d.issuer, d.type, by_codes=self.by_codes)

    @strawberry.field(
        description="The whole amount claims on this document may add up to (it does not"
        " shrink as claims are made); null where the type is not claimable, the body was"
        " erased, or the reader may not see claims"
    )
    async def claimable_amount(self, info: Info) -> str | None:
        d = self.row.doc
        principal = context(info).principal
        issuing = principal is not None and principal.role == HOSPITAL
        if d.body is None or not (issuing or (await self._sight(info)).total):
            return None
        amount = await claimable_amount(context(info).hub.db, d.type, d.type_version, d.body)
        return None if amount is None else money_text(amount)

    @strawberry.field(
        description="What every agency's active claims on this document (any version) add"
        " up to; claimableAmount minus this is what is left. Null where the reader may not"
        " see claims"
    )
    async def claimed_amount(self, info: Info) -> str | None:
        if not (await self._sight(info)).total:
            return None
        d = self.row.doc
        found = await claims_on(context(info).hub.db, d.issuer, d.type, d.id)
        return money_text(claimed_total(found))

    @strawberry.field(
        description="The claims on this document (any version) the reader may see: the"
        " patient every one, an agency its own, anyone else none"
    )
    async def claims(self, info: Info) -> list[Claim]:
        sight = await self._sight(info)
        if not (sight.every or sight.agency):
            return []
        d = self.row.doc
        found = await claims_on(context(info).hub.db, d.issuer, d.type, d.id, sight.agency)
        return [_claim(c, sight.agency) for c in found if sight.shows(c.agency)]


async def _listing_scope(info: Info) -> tuple[str | None, tuple[str, list[object]] | None]:
    """(agency, document clause) for listing claims: an agency's own, a patient's documents'."""
    ctx = context(info)
    principal = ctx.principal
    assert principal is not None
    if principal.role == AGENCY:
        return principal.inst, None
    where = (await ctx.scope()).sql("d.")
    assert where is not None
    return None, (where[0], list(where[1]))


@strawberry.type
class ClaimQueries:
    @strawberry.field(
        description="Claims, oldest first: an agency's own, or every claim on a patient's"
        " documents; a hospital sees none"
    )
    async def claims(
        self,
        info: Info,
        document_id: strawberry.ID | None = None,
        status: ClaimStatus | None = None,
    ) -> list[Claim]:
        principal = require(info, AGENCY, PATIENT, HOSPITAL)
        if principal.role == HOSPITAL:
            return []
        agency, where = await _listing_scope(info)
        records = await list_claims(
            context(info).hub.db,
            agency=agency,
            where=where,
            doc_id=None if document_id is None else str(document_id),
            status=None if status is None else str(status.value),
            limit=MAX_ACCESS_EVENTS,
        )
        return [_claim(r, agency) for r in records]


@strawberry.type
class ClaimMutations:
    @strawberry.mutation(
        description="Book `amount` against a document the agency may claim on (入账);"
        " CONFLICT, saying how much is still claimable, when it does not fit or the version"
        " is reversed, erased or superseded. Answered once its leaf is signed into the log"
    )
    async def claim_document(
        self,
        info: Info,
        document_id: strawberry.ID,
        amount: str,
        reference: str,
        issuer: strawberry.ID | None = None,
        version: int | None = None,
    ) -> Claim:
        principal = require(info, AGENCY)
        assert principal.inst is not None
        ctx = context(info)
        target = await find_target(
            ctx.hub.db,
            await ctx.scope(),
            await ctx.agency_grants(),
            str(document_id),
            None if issuer is None else str(issuer),
            version,
        )
        record = await book_claim(ctx.hub, principal.inst, target, amount, reference, ctx.now())
        return _claim(record, principal.inst)

    @strawberry.mutation(description="Undo the agency's own claim (入账撤销)")
    async def release_claim(self, info: Info, id: strawberry.ID, reason: str) -> Claim:
        principal = require(info, AGENCY)
        assert principal.inst is not None
        ctx = context(info)
        record = await release_claim(ctx.hub, principal.inst, str(id), reason, ctx.now())
        return _claim(record, principal.inst)


@strawberry.type
class ClaimSubscriptions:
    @strawberry.subscription(
        description="Each claim the subscriber sees, as it is booked, released or disputed"
        " (its document reversed), from the subscription's start; status is the new one"
    )
    async def claim_events(
        self,
        info: Info,
        since: Annotated[
            int | None,
            strawberry.argument(
                description="A tree size: report what the leaves from this index on did (a"
                " client resuming passes the size it had reached); default the current size"
            ),
        ] = None,
    ) -> AsyncGenerator[Claim, None]:
        require(info, AGENCY, PATIENT)
        ctx = context(info)
        if since is not None and since < 0:
            raise BadInput("since: a tree size, 0 or more")
        agency, where = await _listing_scope(info)
        # Woken by the process's checkpoint watcher (every claim lands with a checkpoint);
        # the token's end is a deadline of its own, since claims are personal data.
        heads = checkpoint_watcher(ctx.hub).heads()
        seen = since
        try:
            while True:
                principal = ctx.principal
                if principal is None or principal.expired(ctx.now()):
                    return
                left = None
                if principal.expires_at is not None:
                    left = max(0.0, principal.expires_at - ctx.now().timestamp())
                try:
                    head = await asyncio.wait_for(anext(heads), left)
                except TimeoutError:
                    return
                if seen is None:
                    seen = head.size
                    continue
                if head.size > seen:
                    events = await claim_events(
                        ctx.hub.db, seen - 1, head.size, agency=agency, where=where
                    )
                    seen = head.size
                    for event in events:
                        yield _claim(event.claim, agency, event.status)
        finally:
            await heads.aclose()
