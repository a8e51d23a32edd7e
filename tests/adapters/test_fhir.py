"""FHIR Invoice to the medical invoice and back: elements, decimals, supersedes, errors."""

import copy
import json
from decimal import Decimal
from typing import Any

import pytest
from fhir.resources.invoice import Invoice as InvoiceR5
from fhir.resources.R4B.invoice import Invoice as InvoiceR4B
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.errors import MappingError
from adapters.fhir import (
    FhirInvoice,
    dump_fhir_json,
    fhir_payload_to_documents,
    fhir_to_document,
    fhir_to_invoice,
    invoice_to_fhir,
    load_fhir_json,
)
from hub.documents.demo_data import demo_invoices
from hub.documents.errors import BadDocument

# Modelled on the specification's Invoice example (invoice-example.json): a narrative,
# a hospital's own identifier, participant, account, paymentTerms, note and a
# totalPriceComponent, which the mapping ignores, next to the elements it reads.
# Amounts are written as FHIR writers do: 30 and 12.50 rather than 30.00 and 12.5.
SPEC_STYLE_R4B = """
{
  "resourceType": "Invoice",
  "id": "example",
  "text": {
    "status": "generated",
    "div": "<div xmlns=\\"http://www.w3.org/1999/xhtml\\">Outpatient bill 46010126-0000012345</div>"
  },
  "extension": [
    {
      "url": "https://ledger-hub.local/fhir/StructureDefinition/visit",
      "extension": [
        {"url": "type", "valueCode": "outpatient"},
        {"url": "department", "valueString": "Internal Medicine"},
        {"url": "recordNumber", "valueString": "MZ20261120001"}
      ]
    },
    {
      "url": "http://example.org/fhir/StructureDefinition/cashier",
      "valueString": "window 3"
    },
    {
      "url": "https://ledger-hub.local/fhir/StructureDefinition/payment",
      "extension": [
        {"url": "insuranceFund", "valueMoney": {"value": 30, "currency": "CNY"}},
        {"url": "otherPayments", "valueMoney": {"value": 0, "currency": "CNY"}},
        {"url": "personalAccount", "valueMoney": {"value": 10.0, "currency": "CNY"}},
        {"url": "personalCash", "valueMoney": {"value": 14.58, "currency": "CNY"}},
        {"url": "selfPay", "valueMoney": {"value": 4.38}}
      ]
    }
  ],
  "identifier": [
    {"system": "http://myHospital.org/Invoices", "value": "654321"},
    {"use": "official", "system": "urn:ledger-hub:bill", "value": "46010126-0000012345"},
    {"system": "urn:ledger-hub:bill-code", "value": "46010126"},
    {"system": "urn:ledger-hub:bill-number", "value": "0000012345"},
    {"system": "urn:ledger-hub:check-code", "value": "a1B2c3"}
  ],
  "status": "issued",
  "subject": {
    "reference": "Patient/example",
    "identifier": {"system": "http://myHospital.org/mrn", "value": "P-000123"}
  },
  "recipient": {
    "reference": "RelatedPerson/example",
    "identifier": {"system": "urn:ledger-hub:payer-id-masked", "value": "460***********1234"},
    "display": "张三"
  },
  "date": "2026-11-20T10:15:00+08:00",
  "participant": [
    {
      "role": {
        "coding": [
          {"system": "http://snomed.info/sct", "code": "17561000", "display": "Cardiologist"}
        ]
      },
      "actor": {"reference": "Practitioner/example"}
    }
  ],
  "issuer": {"reference": "Organization/example", "display": "Chengmai County People's Hospital"},
  "account": {"reference": "Account/example"},
  "lineItem": [
    {
      "sequence": 1,
      "chargeItemCodeableConcept": {
        "coding": [
          {"system": "https://ledger-hub.local/fhir/CodeSystem/charge-category",
           "code": "laboratory"},
          {"system": "http://myhospital/NamingSystem/billing-codes", "code": "250101",
           "display": "Blood routine"}
        ]
      },
      "priceComponent": [
        {"type": "base", "factor": 1, "amount": {"value": 25.00, "currency": "CNY"}}
      ]
    },
    {
      "sequence": 2,
      "chargeItemCodeableConcept": {
        "coding": [
          {"system": "https://ledger-hub.local/fhir/CodeSystem/charge-item",
           "code": "XJ01CAA040", "display": "阿莫西林胶囊 0.25g×24粒"},
          {"system": "https://ledger-hub.local/fhir/CodeSystem/charge-category",
           "code": "western_medicine", "display": "西药费"}
        ],
        "text": "阿莫西林胶囊 0.25g×24粒"
      },
      "priceComponent": [
        {"type": "base", "factor": 2, "amount": {"value": 25.20, "currency": "CNY"}},
        {
          "type": "informational",
          "code": {"coding": [{"system": "https://ledger-hub.local/fhir/CodeSystem/price-component",
                               "code": "unit-price", "display": "Unit price"}]},
          "amount": {"value": 12.60, "currency": "CNY"}
        }
      ]
    },
    {
      "sequence": 3,
      "chargeItemCodeableConcept": {
        "coding": [
          {"system": "https://ledger-hub.local/fhir/CodeSystem/charge-item",
           "code": "T00100", "display": "黄芪"},
          {"system": "https://ledger-hub.local/fhir/CodeSystem/charge-category",
           "code": "herbal_pieces"}
        ]
      },
      "priceComponent": [
        {"type": "base", "factor": 12.50, "amount": {"value": 4.38, "currency": "CNY"}},
        {
          "type": "informational",
          "code": {"coding": [{"system": "https://ledger-hub.local/fhir/CodeSystem/price-component",
                               "code": "unit-price"}]},
          "amount": {"value": 0.35, "currency": "CNY"}
        }
      ]
    }
  ],
  "totalPriceComponent": [
    {"type": "base", "amount": {"value": 54.58, "currency": "CNY"}}
  ],
  "totalNet": {"value": 54.58, "currency": "CNY"},
  "totalGross": {"value": 54.58, "currency": "CNY"},
  "paymentTerms": "Settled at the cashier; insurance share settled directly.",
  "note": [{"text": "Example adapted from the FHIR Invoice example."}]
}
"""

# Written out by hand from the resource above.
SPEC_STYLE_BODY: dict[str, Any] = {
    "billCode": "46010126",
    "billNumber": "0000012345",
    "checkCode": "a1B2c3",
    "issuedAt": "2026-11-20T10:15:00+08:00",
    "issuerName": "Chengmai County People's Hospital",
    "payer": {"name": "张三", "idMasked": "460***********1234"},
    "patientRef": "P-000123",
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
        },
        {
            "category": "western_medicine",
            "code": "XJ01CAA040",
            "name": "阿莫西林胶囊 0.25g×24粒",
            "quantity": "2",
            "unitPrice": "12.60",
            "amount": "25.20",
        },
        {
            "category": "herbal_pieces",
            "code": "T00100",
            "name": "黄芪",
            "quantity": "12.5",
            "unitPrice": "0.35",
            "amount": "4.38",
        },
    ],
    "totals": {
        "total": "54.58",
        "insuranceFund": "30.00",
        "otherPayments": "0.00",
        "personalAccount": "10.00",
        "personalCash": "14.58",
        "selfPay": "4.38",
    },
    "currency": "CNY",
    "status": "issued",
}


def spec_style(version: str) -> dict[str, Any]:
    resource = load_fhir_json(SPEC_STYLE_R4B)
    if version == "R5":
        # R5 records when the invoice was posted in creation (date is deprecated).
        resource["creation"] = resource.pop("date")
    return resource


def expect_error(resource: dict[str, Any], version: str | None = None) -> MappingError:
    with pytest.raises(MappingError) as caught:
        fhir_to_invoice(resource, version)
    return caught.value


# --- FHIR -> invoice ---------------------------------------------------------------------


@pytest.mark.parametrize("version", ["R4B", "R5"])
def test_spec_style_example_maps_to_the_invoice(version):
    assert fhir_to_invoice(spec_style(version), version) == SPEC_STYLE_BODY


def test_without_a_version_r4b_and_r5_resources_both_map():
    assert fhir_to_invoice(spec_style("R4B")) == SPEC_STYLE_BODY
    assert fhir_to_invoice(spec_style("R5")) == SPEC_STYLE_BODY


def test_r5_creation_is_not_an_r4b_element():
    error = expect_error(spec_style("R5"), "R4B")
    assert error.path == "Invoice.creation"
    assert error.code == "structure"


def test_json_numbers_become_exact_decimals_not_floats():
    resource = load_fhir_json('{"value": 25.10, "big": 999999999999.99, "n": 3, "e": 1e2}')
    assert resource["value"] == Decimal("25.10") and str(resource["value"]) == "25.10"
    assert resource["big"] == Decimal("999999999999.99")
    assert resource["n"] == 3
    assert resource["e"] == Decimal("100")


@pytest.mark.parametrize(
    "payload", ["{", '{"a": NaN}', '{"a": Infinity}', '{"a": 1, "a": 2}', "[" * 100_000]
)
def test_load_refuses_what_is_not_plain_json(payload):
    with pytest.raises(MappingError) as caught:
        load_fhir_json(payload)
    assert caught.value.path == ""
    assert caught.value.code == "structure"


def test_money_is_written_with_exactly_two_decimals_and_quantities_without_trailing_zeros():
    resource = spec_style("R5")
    resource["lineItem"][0]["priceComponent"][0]["amount"]["value"] = Decimal("25")
    resource["lineItem"][0]["priceComponent"][0]["factor"] = Decimal("1.00")
    body = fhir_to_invoice(resource)
    assert body["items"][0]["amount"] == "25.00"
    assert body["items"][0]["quantity"] == "1"
    assert body["items"][2]["quantity"] == "12.5"
    assert body["totals"]["insuranceFund"] == "30.00"


def test_more_than_two_decimal_places_are_refused_not_rounded():
    resource = spec_style("R5")
    resource["totalGross"]["value"] = Decimal("54.580")  # exact: accepted
    assert fhir_to_invoice(resource)["totals"]["total"] == "54.58"
    resource["totalGross"]["value"] = Decimal("54.581")
    error = expect_error(resource)
    assert error.path == "Invoice.totalGross.value"
    assert error.field == "body.totals.total"


def test_a_wrong_line_amount_is_named_by_its_element():
    resource = spec_style("R5")
    resource["lineItem"][1]["priceComponent"][0]["amount"]["value"] = Decimal("25.30")
    error = expect_error(resource)
    assert error.path == "Invoice.lineItem[1].priceComponent[0].amount.value"
    assert error.field == "body.items[1].amount"
    assert error.code == "business-rule"


def test_a_wrong_unit_price_is_named_by_its_informational_component():
    resource = spec_style("R5")
    resource["lineItem"][2]["priceComponent"][1]["amount"]["value"] = Decimal("0.40")
    error = expect_error(resource)
    # quantity x unitPrice no longer gives the amount; the amount is what the rule names
    assert error.path == "Invoice.lineItem[2].priceComponent[0].amount.value"
    resource["lineItem"][2]["priceComponent"][1]["amount"]["value"] = Decimal("-0.35")
    error = expect_error(resource)
    assert error.path == "Invoice.lineItem[2].priceComponent[1].amount.value"
    assert "negative" in error.problem


def test_a_unit_price_is_derived_only_from_a_whole_quantity():
    resource = spec_style("R5")
    del resource["lineItem"][2]["priceComponent"][1]
    error = expect_error(resource)
    assert error.path == "Invoice.lineItem[2].priceComponent"
    assert error.code == "required"
    resource = spec_style("R5")
    del resource["lineItem"][1]["priceComponent"][1]
    assert fhir_to_invoice(resource) == SPEC_STYLE_BODY  # 25.20 / 2 = 12.60
    resource["lineItem"][1]["priceComponent"][0]["amount"]["value"] = Decimal("25.21")
    error = expect_error(resource)  # 25.21 / 2 is no price in cents
    assert error.path == "Invoice.lineItem[1].priceComponent"


def test_an_unknown_category_is_named_by_its_coding():
    resource = spec_style("R5")
    resource["lineItem"][1]["chargeItemCodeableConcept"]["coding"][1]["code"] = "vitamins"
    error = expect_error(resource)
    assert error.path == "Invoice.lineItem[1].chargeItemCodeableConcept.coding[1].code"
    assert "unknown category" in error.problem


def test_payments_that_do_not_add_up_name_the_payment_extension():
    resource = spec_style("R5")
    resource["extension"][2]["extension"][0]["valueMoney"]["value"] = Decimal("31.00")
    error = expect_error(resource)
    assert error.path == "Invoice.extension[2]"
    assert error.field == "body.totals"
    resource["extension"][2]["extension"][4]["valueMoney"]["value"] = Decimal("99.00")
    resource["extension"][2]["extension"][0]["valueMoney"]["value"] = Decimal("30.00")
    error = expect_error(resource)
    assert error.path == "Invoice.extension[2].extension[4].valueMoney.value"


@pytest.mark.parametrize(
    ("change", "path", "code"),
    [
        (lambda r: r.update(foo=1), "Invoice.foo", "structure"),
        (
            lambda r: r["lineItem"][1]["priceComponent"][0]["amount"].update(value="abc"),
            "Invoice.lineItem[1].priceComponent[0].amount.value",
            "structure",
        ),
        (lambda r: r.pop("status"), "Invoice.status", "structure"),
        (lambda r: r.update(status="draft"), "Invoice.status", "not-supported"),
        (lambda r: r.pop("totalGross") and r.pop("totalNet"), "Invoice.totalGross", "required"),
        (lambda r: r["totalGross"].pop("currency"), "Invoice.totalGross.currency", "required"),
        (
            lambda r: r["lineItem"][0]["priceComponent"][0]["amount"].update(currency="USD"),
            "Invoice.lineItem[0].priceComponent[0].amount.currency",
            "invalid",
        ),
        (
            lambda r: r["totalNet"].update(value=Decimal("50.00")),
            "Invoice.totalNet.value",
            "business-rule",
        ),
        (lambda r: r.pop("extension"), "Invoice.extension", "required"),
        (lambda r: r["issuer"].pop("display"), "Invoice.issuer.display", "required"),
        (lambda r: r["recipient"].pop("display"), "Invoice.recipient.display", "required"),
        (
            lambda r: r["extension"][0]["extension"].pop(1),
            "Invoice.extension[0].extension",
            "required",
        ),
        (
            lambda r: r["extension"][0]["extension"][0].update(url="kind"),
            "Invoice.extension[0].extension[0].url",
            "invalid",
        ),
        (
            lambda r: r["extension"][0]["extension"][0].update(valueCode="emergency"),
            "Invoice.extension[0].extension[0].valueCode",
            "business-rule",
        ),
        (lambda r: r["identifier"].pop(4), "Invoice.identifier", "required"),
        (
            lambda r: r["identifier"][3].update(value="000001234"),
            "Invoice.identifier[1].value",
            "invalid",
        ),
        (
            lambda r: r["lineItem"][0]["priceComponent"].append(
                {"type": "tax", "amount": {"value": Decimal("1.00")}}
            ),
            "Invoice.lineItem[0].priceComponent[1].type",
            "not-supported",
        ),
        (
            lambda r: r["lineItem"][0].update(
                chargeItemCodeableConcept=None, chargeItemReference={"reference": "ChargeItem/1"}
            ),
            "Invoice.lineItem[0].chargeItemReference",
            "not-supported",
        ),
        (lambda r: r.update(lineItem=[]), "Invoice.lineItem", "business-rule"),
    ],
)
def test_each_problem_names_its_element(change, path, code):
    resource = spec_style("R4B")
    change(resource)
    resource = {key: value for key, value in resource.items() if value is not None}
    for line in resource.get("lineItem", []):
        if line.get("chargeItemCodeableConcept", "") is None:
            del line["chargeItemCodeableConcept"]
    error = expect_error(resource)
    assert (error.path, error.code) == (path, code)


SUPERSEDES_URL = "https://ledger-hub.local/fhir/StructureDefinition/supersedes"


@pytest.mark.parametrize("version", ["R4B", "R5"])
@pytest.mark.parametrize("element", ["valuePositiveInt", "valueInteger"])
def test_the_supersedes_extension_names_the_version_replaced(version, element):
    resource = spec_style(version)
    resource["status"] = "cancelled"
    resource["extension"].append({"url": SUPERSEDES_URL, element: 1})
    document = fhir_to_document(resource, version)
    assert document == FhirInvoice({**SPEC_STYLE_BODY, "status": "reversed"}, 1)
    # and written the same way
    written = invoice_to_fhir(document.body, version, supersedes=1)
    assert fhir_to_document(load_fhir_json(dump_fhir_json(written)), version) == document
    assert fhir_to_document(spec_style(version), version).supersedes is None


@pytest.mark.parametrize(
    ("extension", "path"),
    [
        ({"url": SUPERSEDES_URL, "valueInteger": 0}, "Invoice.extension[3].valueInteger"),
        ({"url": SUPERSEDES_URL, "valueString": "1"}, "Invoice.extension[3]"),
    ],
)
def test_a_bad_supersedes_extension_names_its_element(extension, path):
    resource = spec_style("R5")
    resource["extension"].append(extension)
    with pytest.raises(MappingError) as caught:
        fhir_to_document(resource)
    assert caught.value.path == path


def test_bundle_entries_carry_their_supersedes():
    body = {**SPEC_STYLE_BODY, "status": "reversed"}
    entries = [
        {"resource": invoice_to_fhir(SPEC_STYLE_BODY)},
        {"resource": invoice_to_fhir(body, supersedes=1)},
    ]
    payload = dump_fhir_json({"resourceType": "Bundle", "type": "collection", "entry": entries})
    assert fhir_payload_to_documents(payload) == [
        (0, FhirInvoice(SPEC_STYLE_BODY)),
        (1, FhirInvoice(body, 1)),
    ]


def test_a_reversal_is_a_cancelled_invoice():
    resource = spec_style("R5")
    resource["status"] = "cancelled"
    resource["cancelledReason"] = "reversed"
    assert fhir_to_invoice(resource) == {**SPEC_STYLE_BODY, "status": "reversed"}
    out = invoice_to_fhir({**SPEC_STYLE_BODY, "status": "reversed"})
    assert (out["status"], out["cancelledReason"]) == ("cancelled", "reversed")


def test_the_bill_can_come_from_the_combined_identifier_alone():
    resource = spec_style("R5")
    resource["identifier"] = [resource["identifier"][1], resource["identifier"][4]]
    assert fhir_to_invoice(resource) == SPEC_STYLE_BODY


def test_the_patient_can_come_from_a_patient_reference():
    resource = spec_style("R5")
    del resource["subject"]["identifier"]
    resource["subject"]["reference"] = "Patient/P-000123"
    assert fhir_to_invoice(resource) == SPEC_STYLE_BODY


def test_something_not_an_invoice_is_refused():
    with pytest.raises(MappingError) as caught:
        fhir_to_invoice({"resourceType": "Patient"})
    assert caught.value.path == "Invoice"
    with pytest.raises(MappingError):
        fhir_to_invoice([])


def test_structure_problems_are_all_reported():
    resource = spec_style("R5")
    resource["foo"] = 1
    resource["bar"] = 2
    error = expect_error(resource)
    assert sorted(problem.path for problem in error.all) == ["Invoice.bar", "Invoice.foo"]


# --- invoice -> FHIR ---------------------------------------------------------------------


@pytest.mark.parametrize(("version", "model"), [("R4B", InvoiceR4B), ("R5", InvoiceR5)])
def test_the_fhir_written_is_valid_for_its_version(version, model):
    for body in [SPEC_STYLE_BODY, *demo_invoices(20, seed=5)]:
        resource = invoice_to_fhir(body, version)
        model.model_validate(resource)
        assert ("creation" in resource) == (version == "R5")
        assert ("date" in resource) == (version == "R4B")


def test_written_money_keeps_its_scale():
    text = dump_fhir_json(invoice_to_fhir(SPEC_STYLE_BODY))
    assert '"totalGross":{"value":54.58,"currency":"CNY"}' in text
    assert '"valueMoney":{"value":0.00,"currency":"CNY"}' in text
    assert '"factor":12.5,' in text
    assert "阿莫西林" in text  # UTF-8, not \\u escapes
    assert json.loads(text)["id"] == "46010126-0000012345"


def test_dump_indents_and_refuses_nan():
    assert dump_fhir_json({"a": [Decimal("1.50"), None, True]}, indent=1) == (
        '{\n "a": [\n  1.50,\n  null,\n  true\n ]\n}'
    )
    assert dump_fhir_json({"a": [], "b": {}}) == '{"a":[],"b":{}}'
    with pytest.raises(ValueError):
        dump_fhir_json(Decimal("NaN"))


def test_an_invalid_body_is_not_written():
    broken = copy.deepcopy(SPEC_STYLE_BODY)
    broken["totals"]["total"] = "54.59"
    with pytest.raises(BadDocument):
        invoice_to_fhir(broken)
    with pytest.raises(ValueError):
        invoice_to_fhir(SPEC_STYLE_BODY, "R4")


@st.composite
def invoices(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(min_value=1, max_value=4))
    body = draw(st.sampled_from(demo_invoices(count, seed=draw(st.integers(0, 999)))))
    body = copy.deepcopy(body)
    text = st.text(
        st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40
    ).filter(str.strip)
    if draw(st.booleans()):
        body["items"][0]["name"] = draw(text)
        body["payer"]["name"] = draw(text)
    body["status"] = draw(st.sampled_from(["issued", "reversed"]))
    return body


@settings(max_examples=60, deadline=None)
@given(body=invoices(), version=st.sampled_from(["R4B", "R5"]))
def test_invoice_to_fhir_to_invoice_is_the_identity(body, version):
    text = dump_fhir_json(invoice_to_fhir(body, version))
    assert fhir_to_invoice(load_fhir_json(text), version) == body
