"""The claimable amount: for a medical invoice what the patient paid; other types none."""

from decimal import Decimal

import pytest

from hub.claims.booking import claim_amount
from hub.claims.claimable import claimable_amount
from hub.documents.demo_data import demo_invoices
from hub.errors import BadInput


def test_an_invoice_claims_what_the_patient_paid() -> None:
    body = demo_invoices(1, seed=4)[0]
    totals = {**body["totals"], "personalAccount": "12.30", "personalCash": "7.05"}
    assert claimable_amount("medical_invoice", {**body, "totals": totals}) == Decimal("19.35")
    # The insurance fund's share is not the patient's to claim.
    assert claimable_amount("medical_invoice", body) == Decimal(
        body["totals"]["personalAccount"]
    ) + Decimal(body["totals"]["personalCash"])


def test_what_is_not_claimable() -> None:
    assert claimable_amount("fiscal_receipt", {"amount": "10.00"}) is None
    assert claimable_amount("medical_invoice", {"totals": {"personalCash": "1.00"}}) is None
    assert claimable_amount("medical_invoice", {"totals": "10.00"}) is None


def test_claim_amounts_are_positive_cents() -> None:
    assert claim_amount("12.5") == "12.50" and claim_amount("0.01") == "0.01"
    for bad in ("0", "0.00", "-1", "1.001", "1e2", " 1", "", "1,00"):
        with pytest.raises(BadInput, match=r"^amount:"):
            claim_amount(bad)
