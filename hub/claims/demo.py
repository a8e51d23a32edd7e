"""Demo claims (`hub serve --demo`): the insurers have booked some of the demo bills, the
first one (the verify link `make run` prints) by both of them."""

from collections.abc import Sequence
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any

from hub.claims.booking import Target, book_claim
from hub.claims.claimable import CENT, claimable_amount, money_text
from hub.documents.invoice import INVOICE_TYPE, invoice_document_id
from hub.documents.service import document_versions

if TYPE_CHECKING:
    from hub.services import Hub

CLAIMED_BILLS = 12


async def seed_claims(
    hub: "Hub", issuers: dict[str, str], bodies: Sequence[dict[str, Any]], agencies: Sequence[str]
) -> int:
    """Book claims on the first CLAIMED_BILLS of ``bodies``: the first agency claims the
    personal account's share (or a third of the cash), the second, on every third bill, a
    third of the cash, so something is left to claim; how many were booked.
    ``issuers`` maps bill codes to the issuing hospitals."""
    booked = 0
    for n, body in enumerate(bodies[:CLAIMED_BILLS]):
        issuer = issuers[body["billCode"]]
        versions = await document_versions(hub.db, INVOICE_TYPE, invoice_document_id(body), issuer)
        if not versions:
            continue
        with_pk = await hub.db.sql.fetch(
            "SELECT id FROM documents WHERE leaf_index = ?", [versions[-1].leaf_index]
        )
        whole = await claimable_amount(hub.db, INVOICE_TYPE, versions[-1].type_version, body)
        if whole is None or whole <= 0:
            continue
        target = Target(
            int(with_pk[0][0]), issuer, INVOICE_TYPE, versions[-1].id, versions[-1].version, whole
        )
        account = Decimal(body["totals"]["personalAccount"])
        cash_third = (Decimal(body["totals"]["personalCash"]) / 3).quantize(CENT, ROUND_DOWN)
        shares = [(agencies[0], account if account > 0 else cash_third)]
        if n % 3 == 0:  # every third bill is claimed at a commercial insurer too
            shares.append((agencies[1], cash_third))
        for agency, amount in shares:
            if amount > 0:
                reference = f"{agency[:3].upper()}-2026-{n + 1:05d}"
                await book_claim(hub, agency, target, money_text(amount), reference)
                booked += 1
    return booked
