"""The claimable amount, as the type version a document was validated under says: for a
medical invoice what the patient paid, for a fiscal receipt its amount."""

from decimal import Decimal

import pytest

from hub.claims.booking import claim_amount
from hub.claims.claimable import claimable_amount
from hub.documents.demo_data import demo_invoices
from hub.errors import BadInput
from hub.store.db import Database


async def test_an_invoice_claims_what_the_patient_paid(db: Database) -> None:
    body = demo_invoices(1, seed=4)[0]
    totals = {**body["totals"], "personalAccount": "12.30", "personalCash": "7.05"}
    assert await claimable_amount(db, "medical_invoice", 1, {**body, "totals": totals}) == (
        Decimal("19.35")
    )
    # The insurance fund's share is not the patient's to claim.
    assert await claimable_amount(db, "medical_invoice", 1, body) == Decimal(
        body["totals"]["personalAccount"]
    ) + Decimal(body["totals"]["personalCash"])


async def test_what_is_claimable_and_what_is_not(db: Database) -> None:
    assert await claimable_amount(db, "fiscal_receipt", 1, {"amount": "10.00"}) == Decimal("10")
    assert await claimable_amount(db, "no_such_type", 1, {"amount": "10.00"}) is None
    assert await claimable_amount(db, "medical_invoice", 7, {"totals": {}}) is None
    partial = {"totals": {"personalCash": "1.00"}}
    assert await claimable_amount(db, "medical_invoice", 1, partial) is None
    assert await claimable_amount(db, "medical_invoice", 1, {"totals": "10.00"}) is None


def test_claim_amounts_are_positive_cents() -> None:
    assert claim_amount("12.5") == "12.50" and claim_amount("0.01") == "0.01"
    for bad in ("0", "0.00", "-1", "1.001", "1e2", " 1", "", "1,00"):
        with pytest.raises(BadInput, match=r"^amount:"):
            claim_amount(bad)
