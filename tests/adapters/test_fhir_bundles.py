"""FHIR Bundles to invoices, and OperationOutcomes of their problems."""

from decimal import Decimal
from typing import Any

import pytest
from fhir.resources.operationoutcome import OperationOutcome

from adapters.errors import MappingError
from adapters.fhir import (
    bundle_to_invoices,
    dump_fhir_json,
    fhir_payload_to_invoices,
    invoice_to_fhir,
    load_fhir_json,
    operation_outcome,
)
from hub.documents.demo_data import demo_invoices
from tests.adapters.test_fhir import expect_error, spec_style

# --- Bundles -----------------------------------------------------------------------------


def bundle(kind: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
    entries = []
    for resource in resources:
        entry: dict[str, Any] = {"fullUrl": "urn:uuid:0", "resource": resource}
        if kind != "collection":
            entry["request"] = {"method": "POST", "url": "Invoice"}
        entries.append(entry)
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


@pytest.mark.parametrize("kind", ["batch", "transaction", "collection"])
def test_a_bundle_of_three_invoices_and_one_invalid_entry(kind):
    bodies = demo_invoices(3, seed=11)
    broken = invoice_to_fhir(bodies[0])
    broken["lineItem"][0]["priceComponent"][0]["amount"]["value"] += Decimal("0.01")
    resources = [invoice_to_fhir(bodies[0]), invoice_to_fhir(bodies[1], "R4B"), broken]
    resources.append(invoice_to_fhir(bodies[2]))
    results = bundle_to_invoices(load_fhir_json(dump_fhir_json(bundle(kind, resources))))
    assert [index for index, _ in results] == [0, 1, 2, 3]
    assert [results[0][1], results[1][1], results[3][1]] == bodies
    error = results[2][1]
    assert isinstance(error, MappingError)
    assert error.path == "Bundle.entry[2].resource.lineItem[0].priceComponent[0].amount.value"


def test_bundle_entries_must_be_invoice_creates():
    resources = [invoice_to_fhir(body) for body in demo_invoices(3, seed=2)]
    data = bundle("batch", [*resources, {"resourceType": "Patient"}])
    data["entry"][0]["request"]["method"] = "PUT"
    del data["entry"][1]["request"]
    data["entry"][2]["resourse"] = {}
    results = bundle_to_invoices(data)
    paths = [result.path for _, result in results if isinstance(result, MappingError)]
    assert paths == [
        "Bundle.entry[0].request.method",
        "Bundle.entry[1].request",
        "Bundle.entry[2].resourse",
        "Bundle.entry[3].resource",
    ]


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"resourceType": "Invoice"}, "Bundle"),
        ({"resourceType": "Bundle", "type": "searchset"}, "Bundle.type"),
        ({"resourceType": "Bundle", "type": "batch", "entry": {}}, "Bundle.entry"),
        ({"resourceType": "Bundle", "type": "batch", "timestamp": "soon"}, "Bundle.timestamp"),
    ],
)
def test_an_unusable_bundle_is_refused_whole(data, path):
    with pytest.raises(MappingError) as caught:
        bundle_to_invoices(data)
    assert caught.value.path == path


def test_a_payload_is_an_invoice_or_a_bundle():
    body = demo_invoices(1, seed=4)[0]
    assert fhir_payload_to_invoices(dump_fhir_json(invoice_to_fhir(body)).encode()) == [(0, body)]
    both = dump_fhir_json(bundle("collection", [invoice_to_fhir(body)]))
    assert fhir_payload_to_invoices(both) == [(0, body)]
    [(index, error)] = fhir_payload_to_invoices('{"resourceType": "Invoice", "status": "issued"}')
    assert index == 0 and isinstance(error, MappingError)
    with pytest.raises(MappingError):
        fhir_payload_to_invoices('{"resourceType": "Patient"}')


# --- OperationOutcome --------------------------------------------------------------------


def test_operation_outcome_names_the_element():
    resource = spec_style("R5")
    resource["lineItem"][1]["priceComponent"][0]["amount"]["value"] = Decimal("25.30")
    outcome = operation_outcome([expect_error(resource)])
    OperationOutcome.model_validate(outcome)
    [issue] = outcome["issue"]
    assert issue["severity"] == "error"
    assert issue["code"] == "business-rule"
    assert issue["expression"] == ["Invoice.lineItem[1].priceComponent[0].amount.value"]
    assert "body.items[1].amount" in issue["diagnostics"]


def test_operation_outcome_lists_every_problem_and_is_never_empty():
    resource = spec_style("R5")
    resource.update(foo=1, bar=2)
    outcome = operation_outcome([expect_error(resource), MappingError("", "not JSON")])
    OperationOutcome.model_validate(outcome)
    assert len(outcome["issue"]) == 3
    assert "expression" not in outcome["issue"][2]
    empty = operation_outcome([])
    OperationOutcome.model_validate(empty)
    assert empty["issue"][0]["severity"] == "information"
