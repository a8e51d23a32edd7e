"""The demo invoices: valid, canonical, unique and deterministic per seed."""

from collections import Counter
from decimal import Decimal

import pytest

from hub.documents.canonical import canonical_json
from hub.documents.demo_data import DEMO_HOSPITALS, demo_invoices
from hub.documents.invoice import CATEGORIES, invoice_document_id, validate_invoice


@pytest.fixture(scope="module")
def invoices() -> list[dict]:
    return demo_invoices(10_000, seed=0)


def test_ten_thousand_demo_invoices_are_all_valid(invoices):
    assert len(invoices) == 10_000
    for body in invoices:
        validate_invoice(body)


def test_demo_invoices_canonicalise(invoices):
    for body in invoices[:300]:
        canonical_json(body)


def test_document_ids_are_unique_and_bill_numbers_sequential_per_hospital(invoices):
    ids = [invoice_document_id(body) for body in invoices]
    assert len(set(ids)) == len(ids)
    per_code: dict[str, list[int]] = {}
    for body in invoices:
        per_code.setdefault(body["billCode"], []).append(int(body["billNumber"]))
    for numbers in per_code.values():
        assert numbers == list(range(1, len(numbers) + 1))


def test_seeds_are_deterministic_and_do_not_collide():
    assert demo_invoices(50, seed=3) == demo_invoices(50, seed=3)
    assert demo_invoices(50, seed=3) != demo_invoices(50, seed=4)
    first = {invoice_document_id(b) for b in demo_invoices(500, seed=0)}
    second = {invoice_document_id(b) for b in demo_invoices(500, seed=1)}
    assert not first & second


def test_a_prefix_of_a_run_is_a_shorter_run():
    assert demo_invoices(200, seed=7)[:50] == demo_invoices(50, seed=7)


def test_hospitals_match_their_bill_codes(invoices):
    by_code = {h.bill_code: h for h in DEMO_HOSPITALS}
    assert len(by_code) == len(DEMO_HOSPITALS)
    assert len({h.id for h in DEMO_HOSPITALS}) == len(DEMO_HOSPITALS)
    for body in invoices:
        assert body["issuerName"] == by_code[body["billCode"]].name
    assert {body["billCode"] for body in invoices} == set(by_code)


def test_a_patient_is_the_same_person_on_every_invoice(invoices):
    payers: dict[str, dict] = {}
    for body in invoices:
        assert payers.setdefault(body["patientRef"], body["payer"]) == body["payer"]
    visits = Counter(body["patientRef"] for body in invoices)
    assert max(visits.values()) > 1
    assert len(payers) > 1000
    # different patients mostly have different names
    assert len({p["name"] for p in payers.values()}) > len(payers) // 2


def test_demo_data_covers_what_the_rules_allow(invoices):
    categories = Counter(item["category"] for body in invoices for item in body["items"])
    assert set(categories) == set(CATEGORIES)
    assert any("." in item["quantity"] for body in invoices for item in body["items"])
    visits = Counter(body["visit"]["type"] for body in invoices)
    assert visits["inpatient"] > 1000
    assert visits["outpatient"] > 5000
    totals = [body["totals"] for body in invoices]
    assert any(Decimal(t["insuranceFund"]) == 0 for t in totals)  # uninsured
    assert any(Decimal(t["personalAccount"]) > 0 for t in totals)  # employee insurance
    assert any(Decimal(t["otherPayments"]) > 0 for t in totals)  # serious-illness cover
    assert any(Decimal(t["selfPay"]) > 0 for t in totals)
    assert all(body["status"] == "issued" for body in invoices)


def test_inpatient_stays_have_dates_and_outpatient_visits_none(invoices):
    for body in invoices:
        visit = body["visit"]
        if visit["type"] == "inpatient":
            assert visit["admittedOn"] < visit["dischargedOn"] == body["issuedAt"][:10]
        else:
            assert visit["admittedOn"] is None and visit["dischargedOn"] is None


def test_count_bounds():
    assert demo_invoices(0) == []
    with pytest.raises(ValueError):
        demo_invoices(-1)
