"""Which document version an agency claims on, found as `document(id)` finds one."""

from collections.abc import Sequence

from hub.access import documents as docs
from hub.access.grants import Grant
from hub.access.visibility import Scope
from hub.claims.booking import Target, nothing_left
from hub.claims.claimable import claimable_amount
from hub.claims.sight import may_claim
from hub.documents.invoice import INVOICE_TYPE
from hub.errors import BadInput, Forbidden, NotFound
from hub.store.db import Database

NOT_FOUND_MESSAGE = "no such document"


async def find_target(
    db: Database,
    scope: Scope,
    grants: Sequence[Grant],
    doc_id: str,
    issuer: str | None = None,
    version: int | None = None,
) -> Target:
    """The version to claim: among the documents called ``doc_id`` the agency may see, a
    medical invoice first, then the lowest issuer id; its latest version unless
    ``version`` names one. NotFound for what the agency may not see."""
    best: tuple[tuple[bool, str, str], docs.DocRow] | None = None
    latest: dict[tuple[str, str], tuple[int, str]] = {}
    # Invoices rank first: look among them alone (one index seek) before all types.
    for looked_up in (INVOICE_TYPE, None):
        for row in await docs.with_id(db, doc_id, looked_up):
            d = row.doc
            key = (d.issuer, d.type)
            latest[key] = max(latest.get(key, (0, "")), (d.version, d.status))
            if issuer is not None and d.issuer != issuer:
                continue
            if version is not None and d.version != version:
                continue
            if scope.access(d.issuer, d.type, d.subject) is None:
                continue
            rank = (d.type != INVOICE_TYPE, d.issuer, d.type)
            if best is None or rank <= best[0]:  # oldest first: on a tie the later wins
                best = (rank, row)
        if best is not None:
            break
    if best is None:
        raise NotFound(NOT_FOUND_MESSAGE)
    row = best[1]
    d = row.doc
    if not may_claim(grants, d.issuer, d.type):
        raise Forbidden("no active grant of this agency allows claims on this document")
    newest, status = latest[(d.issuer, d.type)]
    if d.version != newest:
        how = "reversed (冲红)" if status == "reversed" else "superseded"
        raise nothing_left(f"version {d.version} of this document is {how} by version {newest}")
    if d.erased or d.body is None:
        raise nothing_left(f"version {d.version} of this document was erased")
    if d.status == "reversed":
        raise nothing_left(f"version {d.version} of this document is a reversal (冲红)")
    claimable = await claimable_amount(db, d.type, d.type_version, d.body)
    if claimable is None:
        raise BadInput(f"documents of type {d.type} have no claimable amount")
    return Target(row.pk, d.issuer, d.type, d.id, d.version, claimable)
