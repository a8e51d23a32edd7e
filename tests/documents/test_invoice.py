"""The medical invoice's rules: fields, amounts, totals and payments, each refusal named."""

import copy
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.documents.canonical import canonical_json
from hub.documents.errors import BadDocument
from hub.documents.invoice import (
    CATEGORIES,
    INVOICE_TYPE,
    MAX_ITEMS,
    MAX_TEXT_CHARS,
    invoice_document_id,
    validate_invoice,
)

PAYER_NAME = "张三丰"
PATIENT_REF = "P-000123"
FULL_ID = "460102199001011234"


def design_example() -> dict[str, Any]:
    """The canonical body from DESIGN.md (patient name made distinctive)."""
    return {
        "billCode": "46010126",
        "billNumber": "0000012345",
        "checkCode": "a1B2c3",
        "issuedAt": "2026-11-20T10:15:00+08:00",
        "issuerName": "Chengmai County People's Hospital",
        "payer": {"name": PAYER_NAME, "idMasked": "460***********1234"},
        "patientRef": PATIENT_REF,
        "visit": {
            "type": "outpatient",
            "department": "Internal Medicine",
            "recordNumber": "MZ20261120001",
            "admittedOn": None,
            "dischargedOn": None,
        },
        "items": [
            {
                "category": "laboratory",
                "code": "250101",
                "name": "Blood routine",
                "quantity": "1",
                "unitPrice": "25.00",
                "amount": "25.00",
            }
        ],
        "totals": {
            "total": "25.00",
            "insuranceFund": "15.00",
            "otherPayments": "0.00",
            "personalAccount": "5.00",
            "personalCash": "5.00",
            "selfPay": "0.00",
        },
        "currency": "CNY",
        "status": "issued",
    }


def two_items() -> dict[str, Any]:
    body = design_example()
    body["items"].append(
        {
            "category": "western_medicine",
            "code": "XJ01CAA040",
            "name": "阿莫西林胶囊",
            "quantity": "2",
            "unitPrice": "12.60",
            "amount": "25.20",
        }
    )
    body["totals"].update(total="50.20", personalCash="30.20")
    return body


def rejects(body: object) -> BadDocument:
    with pytest.raises(BadDocument) as err:
        validate_invoice(body)
    message = str(err.value)
    assert message.startswith(f"{err.value.field}: ")
    # No error may carry the patient's identity.
    assert PAYER_NAME not in message
    assert PATIENT_REF not in message
    assert FULL_ID not in message
    return err.value


def mutated(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    body = two_items()
    change(body)
    return body


# --- what is valid --------------------------------------------------------------------------


def test_design_example_is_valid_and_returned_unchanged():
    body = design_example()
    before = copy.deepcopy(body)
    assert validate_invoice(body) is body
    assert body == before


def test_two_items_and_inpatient_dates_are_valid():
    body = two_items()
    body["visit"].update(type="inpatient", admittedOn="2026-11-18", dischargedOn="2026-11-20")
    validate_invoice(body)


def test_reversal_carries_positive_amounts():
    body = design_example()
    body["status"] = "reversed"
    validate_invoice(body)


@pytest.mark.parametrize(
    "issued_at",
    ["2026-11-20T10:15:00Z", "2026-11-20T02:15:00.123+00:00", "2026-11-20T10:15:00-03:30"],
)
def test_issued_at_accepts_any_explicit_offset(issued_at):
    body = design_example()
    body["issuedAt"] = issued_at
    validate_invoice(body)


def test_other_currency_letters_are_accepted():
    body = design_example()
    body["currency"] = "HKD"
    validate_invoice(body)


def test_amount_rounds_half_up_not_to_even():
    body = design_example()
    # 0.5 x 0.05 = 0.025 -> 0.03 half-up (banker's rounding would give 0.02)
    body["items"][0].update(quantity="0.5", unitPrice="0.05", amount="0.03")
    body["totals"] = {
        "total": "0.03",
        "insuranceFund": "0.00",
        "otherPayments": "0.00",
        "personalAccount": "0.00",
        "personalCash": "0.03",
        "selfPay": "0.03",
    }
    validate_invoice(body)
    body["items"][0]["amount"] = "0.02"
    assert rejects(body).field == "body.items[0].amount"


def test_amounts_compare_by_value_not_text():
    body = design_example()
    body["items"][0].update(unitPrice="25", amount="25.0")
    validate_invoice(body)


def test_a_charge_seen_before_counts_again_and_a_changed_one_is_checked_afresh():
    body = design_example()
    validate_invoice(body)
    twice = copy.deepcopy(body)
    twice["items"].append(copy.deepcopy(body["items"][0]))
    amount = Decimal(body["items"][0]["amount"])
    total = str(Decimal(body["totals"]["total"]) + amount)
    cash = str(Decimal(body["totals"]["personalCash"]) + amount)
    twice["totals"].update(total=total, personalCash=cash)
    validate_invoice(twice)
    twice["items"][1]["amount"] = str(amount + Decimal("0.01"))
    assert rejects(twice).field == "body.items[1].amount"


def test_an_item_label_seen_before_passes_and_a_changed_one_is_checked_afresh():
    body = design_example()
    validate_invoice(body)
    validate_invoice(copy.deepcopy(body))  # the same labels again, now known
    for field, bad in (("name", "X\x07Y"), ("code", "\ud800"), ("category", "drug")):
        changed = copy.deepcopy(body)
        changed["items"][0][field] = bad
        assert rejects(changed).field == f"body.items[0].{field}"


@pytest.mark.parametrize("text", ["内科\u3000门诊", "Dr.\u00a0Li", "a\u200bb", "\U0001f3e5 ward"])
def test_text_that_is_not_printable_yet_not_control_is_accepted(text):
    body = design_example()
    body["visit"]["department"] = text
    body["items"][0]["name"] = text
    validate_invoice(body)


@pytest.mark.parametrize("bad", ["A\x1bB", "A\x7fB", "A\udc80B"])
def test_control_characters_and_lone_surrogates_are_refused_in_item_names(bad):
    body = design_example()
    body["items"][0]["name"] = bad
    assert rejects(body).field == "body.items[0].name"


def test_money_of_the_wrong_json_type_is_refused_not_a_crash():
    body = design_example()
    body["items"][0]["amount"] = ["25.00"]
    assert rejects(body).field == "body.items[0].amount"


def test_largest_amounts_fit():
    body = design_example()
    big = "999999999999.99"
    body["items"][0].update(quantity="1", unitPrice=big, amount=big)
    body["totals"].update(total=big, insuranceFund="999999999989.99", personalCash="5.00")
    validate_invoice(body)


def test_many_items_up_to_the_limit():
    body = design_example()
    body["items"] = body["items"] * MAX_ITEMS
    body["totals"].update(total="25000.00", insuranceFund="24990.00")
    validate_invoice(body)
    body["items"].append(body["items"][0])
    assert rejects(body).field == "body.items"


def test_document_id():
    assert invoice_document_id(design_example()) == "46010126-0000012345"
    assert INVOICE_TYPE == "medical_invoice"


def test_document_id_refuses_a_bad_bill_number():
    body = design_example()
    body["billNumber"] = "12345"
    with pytest.raises(BadDocument) as err:
        invoice_document_id(body)
    assert err.value.field == "body.billNumber"


def test_the_fourteen_categories():
    assert len(CATEGORIES) == 14
    assert CATEGORIES["laboratory"] == "化验费"
    assert CATEGORIES["registration"] == "挂号费"


# --- every rule, and the field it names ---------------------------------------------------


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = body
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value

    return change


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = body
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        del target[last]

    return change


CASES: list[tuple[str, Callable[[dict[str, Any]], object], str]] = [
    # structure
    ("unknown top-level field", _set("note", "x"), "body.note"),
    ("unknown payer field", _set("payer.age", "30"), "body.payer.age"),
    ("unknown visit field", _set("visit.ward", "3"), "body.visit.ward"),
    ("unknown item field", _set("items.1.discount", "0"), "body.items[1].discount"),
    ("unknown totals field", _set("totals.tax", "0"), "body.totals.tax"),
    ("odd unknown key", lambda body: body.update({"a.b": "x"}), 'body["a.b"]'),
    ("missing payer name", _drop("payer.name"), "body.payer.name"),
    ("missing visit dates", _drop("visit.dischargedOn"), "body.visit.dischargedOn"),
    ("missing item amount", _drop("items.0.amount"), "body.items[0].amount"),
    ("missing selfPay", _drop("totals.selfPay"), "body.totals.selfPay"),
    # identifiers
    ("billCode too short", _set("billCode", "4601012"), "body.billCode"),
    ("billCode letters", _set("billCode", "4601012a"), "body.billCode"),
    ("billCode number", _set("billCode", 46010126), "body.billCode"),
    ("billNumber 9 digits", _set("billNumber", "000001234"), "body.billNumber"),
    ("billNumber fullwidth digits", _set("billNumber", "０" * 10), "body.billNumber"),
    ("checkCode too short", _set("checkCode", "a1B2c"), "body.checkCode"),
    ("checkCode symbol", _set("checkCode", "a1B2c!"), "body.checkCode"),
    ("issuedAt without offset", _set("issuedAt", "2026-11-20T10:15:00"), "body.issuedAt"),
    ("issuedAt a date", _set("issuedAt", "2026-11-20"), "body.issuedAt"),
    ("issuedAt not a day", _set("issuedAt", "2026-02-30T10:15:00+08:00"), "body.issuedAt"),
    ("issuedAt with a space", _set("issuedAt", "2026-11-20 10:15:00+08:00"), "body.issuedAt"),
    ("issuerName empty", _set("issuerName", "  "), "body.issuerName"),
    ("issuerName too long", _set("issuerName", "医" * (MAX_TEXT_CHARS + 1)), "body.issuerName"),
    ("issuerName control char", _set("issuerName", "A\x00B"), "body.issuerName"),
    ("patientRef a number", _set("patientRef", 123), "body.patientRef"),
    # payer
    ("payer not an object", _set("payer", [PAYER_NAME]), "body.payer"),
    ("payer name empty", _set("payer.name", ""), "body.payer.name"),
    ("payer id unmasked", _set("payer.idMasked", FULL_ID), "body.payer.idMasked"),
    ("payer id barely masked", _set("payer.idMasked", "46010219900101****"), "body.payer.idMasked"),
    ("payer id odd chars", _set("payer.idMasked", "460***-1234"), "body.payer.idMasked"),
    # visit
    ("visit type", _set("visit.type", "emergency"), "body.visit.type"),
    ("visit department empty", _set("visit.department", ""), "body.visit.department"),
    ("visit record null", _set("visit.recordNumber", None), "body.visit.recordNumber"),
    ("admittedOn slashes", _set("visit.admittedOn", "2026/11/18"), "body.visit.admittedOn"),
    ("dischargedOn month 13", _set("visit.dischargedOn", "2026-13-01"), "body.visit.dischargedOn"),
    # items
    ("items not a list", _set("items", {}), "body.items"),
    ("items empty", _set("items", []), "body.items"),
    ("item not an object", _set("items.1", "x"), "body.items[1]"),
    ("category unknown", _set("items.1.category", "drugs"), "body.items[1].category"),
    ("category label", _set("items.1.category", "西药费"), "body.items[1].category"),
    ("code empty", _set("items.0.code", ""), "body.items[0].code"),
    ("name a list", _set("items.1.name", ["x"]), "body.items[1].name"),
    ("quantity zero", _set("items.1.quantity", "0.00"), "body.items[1].quantity"),
    ("quantity negative", _set("items.1.quantity", "-2"), "body.items[1].quantity"),
    ("quantity 3 places", _set("items.1.quantity", "2.000"), "body.items[1].quantity"),
    ("quantity an int", _set("items.1.quantity", 2), "body.items[1].quantity"),
    ("quantity a float", _set("items.1.quantity", 2.0), "body.items[1].quantity"),
    ("unitPrice exponent", _set("items.1.unitPrice", "1.26e1"), "body.items[1].unitPrice"),
    ("unitPrice plus sign", _set("items.1.unitPrice", "+12.60"), "body.items[1].unitPrice"),
    ("unitPrice leading zero", _set("items.1.unitPrice", "012.60"), "body.items[1].unitPrice"),
    ("unitPrice bare dot", _set("items.1.unitPrice", "12."), "body.items[1].unitPrice"),
    ("unitPrice spaces", _set("items.1.unitPrice", " 12.60"), "body.items[1].unitPrice"),
    ("amount 13 digits", _set("items.1.amount", "1000000000000.00"), "body.items[1].amount"),
    ("amount negative", _set("items.1.amount", "-25.20"), "body.items[1].amount"),
    ("amount wrong", _set("items.1.amount", "25.21"), "body.items[1].amount"),
    # totals
    ("totals not an object", _set("totals", "50.20"), "body.totals"),
    ("total is not the sum", _set("totals.total", "50.21"), "body.totals.total"),
    ("payments do not add up", _set("totals.insuranceFund", "15.01"), "body.totals"),
    ("selfPay exceeds personal", _set("totals.selfPay", "35.21"), "body.totals.selfPay"),
    ("selfPay negative", _set("totals.selfPay", "-1.00"), "body.totals.selfPay"),
    ("otherPayments a float", _set("totals.otherPayments", 0.0), "body.totals.otherPayments"),
    # the rest
    ("currency lower case", _set("currency", "cny"), "body.currency"),
    ("currency two letters", _set("currency", "CN"), "body.currency"),
    ("status void", _set("status", "void"), "body.status"),
    ("status null", _set("status", None), "body.status"),
]


@pytest.mark.parametrize(("change", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_rule_names_its_field(change, field):
    assert rejects(mutated(change)).field == field


@pytest.mark.parametrize("missing", list(design_example()))
def test_every_top_level_field_is_required(missing):
    body = design_example()
    del body[missing]
    error = rejects(body)
    assert error.field == f"body.{missing}"
    assert "missing" in error.problem


def test_body_must_be_an_object():
    assert rejects([design_example()]).field == "body"
    assert rejects(None).field == "body"


def test_discharge_before_admission():
    body = design_example()
    body["visit"].update(type="inpatient", admittedOn="2026-11-20", dischargedOn="2026-11-19")
    assert rejects(body).field == "body.visit.dischargedOn"


def test_first_bad_field_wins():
    body = design_example()
    body["billCode"] = "x"
    body["status"] = "x"
    assert rejects(body).field == "body.billCode"


def test_negative_amount_message_explains_reversals():
    body = two_items()
    body["items"][1]["amount"] = "-25.20"
    assert "reversal" in rejects(body).problem


def test_amount_mismatch_message_shows_the_arithmetic():
    body = two_items()
    body["items"][1]["amount"] = "25.21"
    problem = rejects(body).problem
    assert "25.21" in problem
    assert "2 x 12.60 = 25.20" in problem


# --- privacy of error messages -------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        _set("payer.idMasked", FULL_ID),
        _set("checkCode", "ab$12!"),
        _set("items.0.category", PAYER_NAME),
        _set("items.0.category", PATIENT_REF),
        _set("items.0.quantity", PAYER_NAME),
        _set("totals.total", PATIENT_REF),
        _set("visit.type", PAYER_NAME),
        _set("status", PATIENT_REF),
        _set("billNumber", FULL_ID),
        _set("issuedAt", PAYER_NAME),
        _set("visit.admittedOn", PATIENT_REF),
        _set("currency", PAYER_NAME),
    ],
)
def test_errors_never_echo_personal_values(change):
    body = mutated(change)
    error = rejects(body)  # asserts name, patientRef and the full id are absent
    assert "ab$12!" not in str(error)


def test_unknown_category_key_is_echoed():
    assert "'drugs'" in str(rejects(mutated(_set("items.1.category", "drugs"))))


# --- property: random valid invoices -------------------------------------------------------

CENT = Decimal("0.01")
HAN = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5)
TEXT = st.text(
    alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "S")),
    min_size=1,
    max_size=30,
)


def _decimal_text(hundredths: int, style: int) -> str:
    """One of the spellings the rules allow: "12", "12.5" or "12.50"."""
    whole, frac = divmod(hundredths, 100)
    if style == 0 and frac == 0:
        return str(whole)
    if style == 1 and frac % 10 == 0:
        return f"{whole}.{frac // 10}"
    return f"{whole}.{frac:02d}"


@st.composite
def items(draw: st.DrawFn) -> tuple[dict[str, str], int]:
    quantity = draw(st.integers(1, 10**6))
    price = draw(st.integers(0, 10**7))
    style = draw(st.integers(0, 2))
    quantity_text = _decimal_text(quantity, style)
    price_text = _decimal_text(price, style)
    # the rule, computed from the texts independently of the validator
    amount = (Decimal(quantity_text) * Decimal(price_text)).quantize(CENT, ROUND_HALF_UP)
    cents = int(amount * 100)
    item = {
        "category": draw(st.sampled_from(sorted(CATEGORIES))),
        "code": draw(st.from_regex(r"[0-9A-Z]{1,12}", fullmatch=True)),
        "name": draw(TEXT),
        "quantity": quantity_text,
        "unitPrice": price_text,
        "amount": _decimal_text(cents, style),
    }
    return item, cents


@st.composite
def invoices(draw: st.DrawFn) -> dict[str, Any]:
    lines = draw(st.lists(items(), min_size=1, max_size=12))
    total = sum(cents for _, cents in lines)
    fund = draw(st.integers(0, total))
    other = draw(st.integers(0, total - fund))
    account = draw(st.integers(0, total - fund - other))
    cash = total - fund - other - account
    self_pay = draw(st.integers(0, account + cash))
    when = draw(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2099, 12, 31)))
    offset = draw(st.integers(-12 * 4, 14 * 4)) * 15
    sign = "-" if offset < 0 else "+"
    issued_at = (
        when.strftime("%Y-%m-%dT%H:%M:%S") + f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    )
    inpatient = draw(st.booleans())
    admitted = draw(st.dates()) if inpatient else None
    discharged = None
    if admitted is not None and draw(st.booleans()):
        discharged = admitted + draw(
            st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=90))
        )
    return {
        "billCode": draw(st.from_regex(r"[0-9]{8}", fullmatch=True)),
        "billNumber": draw(st.from_regex(r"[0-9]{10}", fullmatch=True)),
        "checkCode": draw(st.from_regex(r"[0-9A-Za-z]{6}", fullmatch=True)),
        "issuedAt": issued_at,
        "issuerName": draw(TEXT),
        "payer": {
            "name": draw(st.text(alphabet=HAN, min_size=2, max_size=4)),
            "idMasked": draw(st.from_regex(r"[0-9]{3}\*{11}[0-9]{3}[0-9X]", fullmatch=True)),
        },
        "patientRef": "P-" + draw(st.from_regex(r"[0-9]{6}", fullmatch=True)),
        "visit": {
            "type": "inpatient" if inpatient else "outpatient",
            "department": draw(TEXT),
            "recordNumber": draw(st.from_regex(r"(MZ|ZY)[0-9]{8,12}", fullmatch=True)),
            "admittedOn": None if admitted is None else admitted.isoformat(),
            "dischargedOn": None if discharged is None else discharged.isoformat(),
        },
        "items": [item for item, _ in lines],
        "totals": {
            "total": _money(total),
            "insuranceFund": _money(fund),
            "otherPayments": _money(other),
            "personalAccount": _money(account),
            "personalCash": _money(cash),
            "selfPay": _money(self_pay),
        },
        "currency": "CNY",
        "status": draw(st.sampled_from(["issued", "reversed"])),
    }


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(invoices())
def test_random_valid_invoices_validate(body):
    assert validate_invoice(body) is body
    canonical_json(body)  # and they canonicalise


PAYMENT_FIELDS = ("insuranceFund", "otherPayments", "personalAccount", "personalCash")


@SETTINGS
@given(invoices(), st.data(), st.sampled_from(["-0.01", "0.01"]))
def test_a_cent_off_anywhere_is_rejected(body, data, delta):
    targets = [("item", i) for i in range(len(body["items"]))]
    targets += [("totals", key) for key in ("total", *PAYMENT_FIELDS)]
    kind, where = data.draw(st.sampled_from(targets))
    holder = body["items"][where] if kind == "item" else body["totals"]
    key = "amount" if kind == "item" else where
    changed = Decimal(holder[key]) + Decimal(delta)
    holder[key] = str(changed)

    error = rejects(body)
    assert body["payer"]["name"] not in str(error)
    assert body["patientRef"] not in str(error)
    if kind == "item":
        assert error.field == f"body.items[{where}].amount"
    elif where == "total":
        assert error.field == "body.totals.total"
    elif changed < 0:
        assert error.field == f"body.totals.{where}"
    else:
        assert error.field == "body.totals"
