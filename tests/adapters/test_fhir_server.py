"""The adapter's FHIR endpoint: Invoices and Bundles posted, queued and answered."""

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.bundle import Bundle
from fhir.resources.capabilitystatement import CapabilityStatement
from fhir.resources.operationoutcome import OperationOutcome
from starlette.testclient import TestClient

from adapters.errors import MappingError
from adapters.fhir import FhirInvoice, dump_fhir_json, invoice_to_fhir
from adapters.fhir_server import create_fhir_app
from hub.documents.demo_data import demo_invoices
from hub.documents.invoice import invoice_document_id

FHIR_JSON = "application/fhir+json"


class Outbox:
    """Records what the endpoint queues and refuses; can be told to fail."""

    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.versions: list[int | None] = []
        self.refused: list[MappingError] = []
        self.fail = False

    async def enqueue(self, documents: list[FhirInvoice]) -> list[str]:
        if self.fail:
            raise RuntimeError("disk full")
        self.calls.append([document.body for document in documents])
        self.versions += [document.supersedes for document in documents]
        return [f"q{len(self.calls)}.{index}" for index in range(len(documents))]

    async def refuse(self, errors: list[MappingError]) -> None:
        self.refused += errors

    @property
    def queued(self) -> list[dict[str, Any]]:
        return [body for call in self.calls for body in call]


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


@pytest.fixture
def client(outbox: Outbox) -> TestClient:
    return TestClient(
        create_fhir_app(outbox.enqueue, refuse=outbox.refuse, max_body_bytes=200_000, max_entries=5)
    )


def post(
    client: TestClient,
    url: str,
    resource: Any,
    content_type: str = FHIR_JSON,
    headers: dict[str, str] | None = None,
) -> Any:
    text = resource if isinstance(resource, str) else dump_fhir_json(resource)
    sent = {"content-type": content_type} | (headers or {})
    return client.post(url, content=text.encode(), headers=sent)


def outcome_of(response: Any) -> dict[str, Any]:
    assert response.headers["content-type"].startswith(FHIR_JSON)
    outcome = response.json()
    OperationOutcome.model_validate(outcome)
    return outcome


def bundle(kind: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
    entries = [
        {"resource": resource, "request": {"method": "POST", "url": "Invoice"}}
        for resource in resources
    ]
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def broken_resource(body: dict[str, Any]) -> dict[str, Any]:
    resource = invoice_to_fhir(body)
    resource["lineItem"][0]["priceComponent"][0]["amount"]["value"] += Decimal("0.01")
    return resource


def test_an_invoice_is_queued_and_answered_202(client, outbox):
    body = demo_invoices(1, seed=1)[0]
    response = post(
        client,
        "/fhir/Invoice",
        invoice_to_fhir(body),
        headers={"prefer": "return=OperationOutcome"},
    )
    assert response.status_code == 202
    [issue] = outcome_of(response)["issue"]
    assert issue["severity"] == "information"
    assert invoice_document_id(body) in issue["diagnostics"]
    assert "q1.0" in issue["diagnostics"]
    assert outbox.calls == [[body]]


def test_an_invalid_invoice_answers_422_naming_the_element(client, outbox):
    body = demo_invoices(1, seed=1)[0]
    response = post(client, "/fhir/Invoice", broken_resource(body))
    assert response.status_code == 422
    [issue] = outcome_of(response)["issue"]
    assert issue["severity"] == "error"
    assert issue["expression"] == ["Invoice.lineItem[0].priceComponent[0].amount.value"]
    assert outbox.calls == []


def test_structurally_invalid_fhir_answers_400(client, outbox):
    resource = invoice_to_fhir(demo_invoices(1, seed=1)[0])
    resource["lineItem"][1]["priceComponent"][0]["amount"]["value"] = "a lot"
    resource["colour"] = "blue"
    response = post(client, "/fhir/Invoice", resource)
    assert response.status_code == 400
    expressions = [issue["expression"][0] for issue in outcome_of(response)["issue"]]
    assert sorted(expressions) == [
        "Invoice.colour",
        "Invoice.lineItem[1].priceComponent[0].amount.value",
    ]
    assert outbox.calls == []


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ("{not json", 400),
        ('{"resourceType": "Patient"}', 400),
        ('{"resourceType": "Bundle", "type": "batch"}', 400),
        ("[]", 400),
    ],
)
def test_what_is_not_an_invoice_answers_400(client, outbox, payload, status):
    response = post(client, "/fhir/Invoice", payload)
    assert response.status_code == status
    assert outcome_of(response)["issue"][0]["severity"] == "error"
    assert outbox.calls == []


def test_the_fhir_version_comes_from_the_content_type(client, outbox):
    body = demo_invoices(1, seed=1)[0]
    r5 = dump_fhir_json(invoice_to_fhir(body, "R5"))
    r4b = dump_fhir_json(invoice_to_fhir(body, "R4B"))
    assert post(client, "/fhir/Invoice", r4b, f"{FHIR_JSON}; fhirVersion=4.3").status_code == 202
    assert post(client, "/fhir/Invoice", r5, f"{FHIR_JSON}; fhirVersion=5.0").status_code == 202
    response = post(client, "/fhir/Invoice", r5, f"{FHIR_JSON}; fhirVersion=4.3")
    assert response.status_code == 400
    assert outcome_of(response)["issue"][0]["expression"] == ["Invoice.creation"]
    assert post(client, "/fhir/Invoice", r5, f"{FHIR_JSON}; fhirVersion=3.0").status_code == 415
    assert post(client, "/fhir/Invoice", r5, "application/fhir+xml").status_code == 415
    assert post(client, "/fhir/Invoice", r5, "application/json").status_code == 202
    assert outbox.queued == [body, body, body]


def test_a_batch_queues_the_good_entries_and_reports_the_bad(client, outbox):
    bodies = demo_invoices(3, seed=7)
    resources = [invoice_to_fhir(bodies[0]), broken_resource(bodies[1])]
    resources += [invoice_to_fhir(bodies[1]), invoice_to_fhir(bodies[2])]
    response = post(client, "/fhir", bundle("batch", resources))
    assert response.status_code == 200
    result = response.json()
    Bundle.model_validate(result)
    assert result["type"] == "batch-response"
    statuses = [entry["response"]["status"] for entry in result["entry"]]
    assert statuses == ["202 Accepted", "422 Unprocessable Entity", "202 Accepted", "202 Accepted"]
    [issue] = result["entry"][1]["response"]["outcome"]["issue"]
    assert issue["expression"] == [
        "Bundle.entry[1].resource.lineItem[0].priceComponent[0].amount.value"
    ]
    assert "q1.2" in result["entry"][3]["response"]["outcome"]["issue"][0]["diagnostics"]
    assert outbox.calls == [bodies]  # one call for the whole batch


def test_a_collection_is_handled_like_a_batch(client, outbox):
    bodies = demo_invoices(2, seed=8)
    data = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": invoice_to_fhir(body)} for body in bodies],
    }
    response = post(client, "/fhir", data)
    assert response.status_code == 200
    assert response.json()["type"] == "batch-response"
    assert outbox.queued == bodies


def test_a_transaction_with_a_bad_entry_queues_nothing(client, outbox):
    bodies = demo_invoices(3, seed=9)
    resources = [invoice_to_fhir(bodies[0]), broken_resource(bodies[1]), broken_resource(bodies[2])]
    response = post(client, "/fhir/", bundle("transaction", resources))
    assert response.status_code == 422
    expressions = [issue["expression"][0] for issue in outcome_of(response)["issue"]]
    assert expressions == [
        "Bundle.entry[1].resource.lineItem[0].priceComponent[0].amount.value",
        "Bundle.entry[2].resource.lineItem[0].priceComponent[0].amount.value",
    ]
    assert outbox.calls == []


def test_a_good_transaction_is_queued_in_one_call(client, outbox):
    bodies = demo_invoices(3, seed=10)
    response = post(client, "/fhir", bundle("transaction", [invoice_to_fhir(b) for b in bodies]))
    assert response.status_code == 200
    result = response.json()
    Bundle.model_validate(result)
    assert result["type"] == "transaction-response"
    assert [entry["response"]["status"] for entry in result["entry"]] == ["202 Accepted"] * 3
    assert outbox.calls == [bodies]


@pytest.mark.parametrize(
    ("payload", "status", "expression"),
    [
        ({"resourceType": "Invoice", "status": "issued"}, 400, None),
        ({"resourceType": "Bundle", "type": "history"}, 422, "Bundle.type"),
        ({"resourceType": "Bundle", "type": "batch", "entry": [{}] * 6}, 413, "Bundle.entry"),
    ],
)
def test_an_unusable_bundle_is_refused(client, outbox, payload, status, expression):
    response = post(client, "/fhir", payload)
    assert response.status_code == status
    issue = outcome_of(response)["issue"][0]
    assert issue.get("expression", [None])[0] == expression
    assert outbox.calls == []


def test_an_empty_batch_answers_an_empty_response(client, outbox):
    response = post(client, "/fhir", {"resourceType": "Bundle", "type": "batch"})
    assert response.status_code == 200
    assert response.json() == {"resourceType": "Bundle", "type": "batch-response", "entry": []}
    assert outbox.calls == []


def test_a_payload_over_the_limit_answers_413(client, outbox):
    response = post(client, "/fhir/Invoice", " " * 200_001)
    assert response.status_code == 413
    assert outcome_of(response)["issue"][0]["code"] == "too-costly"

    def chunks():  # no Content-Length: the limit holds on what arrives
        for _ in range(30):
            yield b" " * 10_000

    response = client.post("/fhir/Invoice", content=chunks(), headers={"content-type": FHIR_JSON})
    assert response.status_code == 413
    assert outbox.calls == []


def test_an_outbox_failure_answers_500_without_details(client, outbox):
    outbox.fail = True
    response = post(client, "/fhir/Invoice", invoice_to_fhir(demo_invoices(1, seed=1)[0]))
    assert response.status_code == 500
    [issue] = outcome_of(response)["issue"]
    assert issue["code"] == "exception"
    assert "disk full" not in issue["diagnostics"]


def test_metadata_is_a_capability_statement(client):
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    statement = response.json()
    CapabilityStatement.model_validate(statement)
    assert statement["rest"][0]["resource"][0]["type"] == "Invoice"


def test_unknown_routes_and_methods_answer_an_operation_outcome(client):
    response = client.get("/fhir/Invoice")
    assert response.status_code == 405
    assert outcome_of(response)["issue"][0]["code"] == "not-supported"
    response = client.post("/fhir/Patient", content=b"{}")
    assert response.status_code == 404
    assert outcome_of(response)["issue"][0]["code"] == "not-found"


def test_a_post_without_content_type_answers_415(client, outbox):
    data = dump_fhir_json(invoice_to_fhir(demo_invoices(1, seed=1)[0])).encode()
    response = client.post("/fhir/Invoice", content=data)
    assert response.status_code == 415
    assert outcome_of(response)["issue"][0]["code"] == "not-supported"
    assert outbox.calls == []


def test_refusals_are_handed_over_as_dead_letters(client, outbox):
    bodies = demo_invoices(3, seed=12)
    assert post(client, "/fhir/Invoice", broken_resource(bodies[0])).status_code == 422
    assert post(client, "/fhir/Invoice", "{not json").status_code == 400
    batch = bundle("batch", [invoice_to_fhir(bodies[1]), broken_resource(bodies[2])])
    assert post(client, "/fhir", batch).status_code == 200
    transaction = bundle("transaction", [broken_resource(bodies[1])])
    assert post(client, "/fhir", transaction).status_code == 422
    assert [error.path for error in outbox.refused] == [
        "Invoice.lineItem[0].priceComponent[0].amount.value",
        "",
        "Bundle.entry[1].resource.lineItem[0].priceComponent[0].amount.value",
        "Bundle.entry[0].resource.lineItem[0].priceComponent[0].amount.value",
    ]
    # a failure of the adapter's own is not the sender's dead letter
    outbox.fail = True
    assert post(client, "/fhir/Invoice", invoice_to_fhir(bodies[0])).status_code == 500
    assert len(outbox.refused) == 4


def test_rest_refusals_count_in_the_outbox_without_patient_data(tmp_path: Path) -> None:
    from adapters.intake import refuse_fhir
    from adapters.outbox import Outbox as RealOutbox

    async def enqueue(documents: list[FhirInvoice]) -> list[str]:
        raise AssertionError("nothing here is good")

    bodies = demo_invoices(30, seed=13)
    with RealOutbox(tmp_path / "outbox.db") as box:

        async def refuse(errors: list[MappingError]) -> None:
            await refuse_fhir(box, errors)

        client = TestClient(create_fhir_app(enqueue, refuse=refuse))
        for body in bodies:
            resource = broken_resource(body)
            resource["subject"] = {"identifier": {"value": body["patientRef"]}, "display": 5}
            assert post(client, "/fhir/Invoice", resource).status_code == 400
        assert box.counts().refused == 30
        letters = box.dead_letters()
    assert {(letter.source, letter.code) for letter in letters} == {("fhir", "structure")}
    shown = repr(letters)
    assert not any(b["patientRef"] in shown or b["payer"]["name"] in shown for b in bodies)
