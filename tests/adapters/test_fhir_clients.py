"""The FHIR endpoint driven by the clients hospitals use: fhirpy and SMART's fhirclient
over real HTTP, with a real outbox and the fake hub behind it. Creation answers 202
with where to poll, Prefer is honoured, versions are negotiated, PUT/DELETE are 405,
what real senders write maps, every problem comes back at once, and without the
credential nothing is taken."""

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fhirclient import client as smart_client
from fhirclient.models.invoice import Invoice as ClientInvoice
from fhirpy import AsyncFHIRClient

from adapters.cli import main
from adapters.delivery import Delivery
from adapters.fhir import dump_fhir_json, invoice_to_fhir
from adapters.fhir_server import create_fhir_app
from adapters.hub_client import HubClient
from adapters.intake import enqueue_invoices, refuse_fhir
from adapters.outbox import Outbox
from hub.documents.demo_data import demo_invoices
from hub.documents.invoice import invoice_document_id
from tests.adapters.fakehub import FakeHubServer

SECRET = "fhir-sender-secret-0123456789"
AUTH = {"Authorization": f"Bearer {SECRET}"}
FHIR_JSON = "application/fhir+json"


class Endpoint:
    """create_fhir_app over a real socket (uvicorn in a thread), on a real outbox."""

    def __init__(self, outbox: Outbox) -> None:
        async def enqueue(documents: Any) -> list[str]:
            bodies = [document.body for document in documents]
            versions = [document.supersedes for document in documents]
            return await enqueue_invoices(outbox, bodies, source="fhir", supersedes=versions)

        async def lookup(receipt: str) -> dict[str, Any] | None:
            return outbox.state_of(int(receipt.lstrip("#")))

        app = create_fhir_app(
            enqueue,
            refuse=lambda errors: refuse_fhir(outbox, errors),
            lookup=lookup,
            credential=SECRET,
        )
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="error"))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive()
            time.sleep(0.01)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    with Outbox(tmp_path / "outbox.db") as box:
        yield box


@pytest.fixture
def endpoint(outbox: Outbox) -> Iterator[Endpoint]:
    served = Endpoint(outbox)
    yield served
    served.stop()


def plain(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource as a client holds it: JSON numbers as floats."""
    return json.loads(dump_fhir_json(resource))


async def test_fhirpy_save_keeps_the_resource_and_learns_its_id(endpoint: Endpoint) -> None:
    body = demo_invoices(1, seed=51)[0]
    client = AsyncFHIRClient(endpoint.base, authorization=AUTH["Authorization"])
    sent = plain(invoice_to_fhir(body))
    del sent["id"]  # a new resource: fhirpy creates it with POST
    saved = client.resource("Invoice", **sent)
    await saved.save()
    assert saved["id"] == invoice_document_id(body)
    assert saved["identifier"] == sent["identifier"]
    assert saved["resourceType"] == "Invoice"


def test_fhirclient_creates_and_reads_the_capability_statement(endpoint: Endpoint) -> None:
    body = demo_invoices(1, seed=52)[0]
    smart = smart_client.FHIRClient(settings={"app_id": "his", "api_base": endpoint.base + "/"})
    smart.server.session.headers.update(AUTH)
    smart.prepare()
    assert smart.server.capabilityStatement.fhirVersion == "5.0.0"
    resource = plain(invoice_to_fhir(body, "R4B"))
    del resource["id"]  # fhirclient creates only what has no id yet
    answer = ClientInvoice(resource).create(smart.server)
    assert answer is not None and answer["id"] == invoice_document_id(body)


async def test_202_points_at_the_queue_entry_which_tells_what_the_hub_said(
    endpoint: Endpoint, outbox: Outbox, hub: FakeHubServer
) -> None:
    body = demo_invoices(1, seed=53)[0]
    clash = {**body, "checkCode": "ZZZZZZ"}
    async with httpx.AsyncClient(headers=AUTH) as http:
        answers = []
        for invoice in (body, clash):
            answers.append(
                await http.post(
                    f"{endpoint.base}/Invoice",
                    content=dump_fhir_json(invoice_to_fhir(invoice)),
                    headers={"content-type": FHIR_JSON, "prefer": "return=minimal"},
                )
            )
        assert [a.status_code for a in answers] == [202, 202]
        assert all(a.content == b"" for a in answers)
        first, second = (
            endpoint.base.removesuffix("/fhir") + a.headers["content-location"] for a in answers
        )
        state = (await http.get(first)).json()["issue"][0]["diagnostics"]
        assert state.startswith("queued for anchoring")
        async with HubClient(hub.url, "hospital-token") as client:
            await Delivery(outbox, client).deliver_once()
        delivered = (await http.get(first)).json()["issue"][0]
        rejected = (await http.get(second)).json()["issue"][0]
    assert delivered["diagnostics"].startswith("delivered: CREATED at leaf 0")
    assert (rejected["severity"], rejected["code"]) == ("error", "processing")
    assert rejected["diagnostics"].startswith("rejected by the hub: CONFLICT")


async def test_prefer_outcome_and_batch_entries_carry_their_location(endpoint: Endpoint) -> None:
    bodies = demo_invoices(2, seed=54)
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": invoice_to_fhir(b), "request": {"method": "POST", "url": "Invoice"}}
            for b in bodies
        ],
    }
    async with httpx.AsyncClient(headers=AUTH | {"content-type": FHIR_JSON}) as http:
        one = await http.post(
            f"{endpoint.base}/Invoice",
            content=dump_fhir_json(invoice_to_fhir(bodies[0])),
            headers={"prefer": "return=OperationOutcome"},
        )
        batch = await http.post(endpoint.base, content=dump_fhir_json(bundle))
    assert one.json()["resourceType"] == "OperationOutcome"
    responses = [entry["response"] for entry in batch.json()["entry"]]
    assert [r["status"] for r in responses] == ["202 Accepted"] * 2
    assert all(r["location"].startswith("/fhir/_queue/") for r in responses)


async def test_versions_are_negotiated_and_full_forms_accepted(endpoint: Endpoint) -> None:
    body = demo_invoices(1, seed=55)[0]
    async with httpx.AsyncClient(headers=AUTH) as http:
        asked = {}
        for version in ("4.0", "4.0.1", "4.3", "5.0.0", "3.0"):
            answer = await http.get(
                f"{endpoint.base}/metadata",
                headers={"accept": f"{FHIR_JSON}; fhirVersion={version}"},
            )
            asked[version] = (answer.status_code, answer.json().get("fhirVersion"))
        created = {}
        for version, kind in (("4.0.1", "R4B"), ("4.3.0", "R4B"), ("5.0.0", "R5")):
            answer = await http.post(
                f"{endpoint.base}/Invoice",
                content=dump_fhir_json(invoice_to_fhir(body, kind)),
                headers={"content-type": f"{FHIR_JSON}; fhirVersion={version}"},
            )
            created[version] = answer.status_code
    assert asked == {
        "4.0": (200, "4.0.1"),
        "4.0.1": (200, "4.0.1"),
        "4.3": (200, "4.3.0"),
        "5.0.0": (200, "5.0.0"),
        "3.0": (406, None),
    }
    assert created == {"4.0.1": 202, "4.3.0": 202, "5.0.0": 202}


async def test_put_and_delete_are_405_and_a_read_is_404(endpoint: Endpoint) -> None:
    async with httpx.AsyncClient(headers=AUTH) as http:
        put = await http.put(f"{endpoint.base}/Invoice/x", content=b"{}")
        delete = await http.delete(f"{endpoint.base}/Invoice/x")
        read = await http.get(f"{endpoint.base}/Invoice/x")
    assert (put.status_code, delete.status_code, read.status_code) == (405, 405, 404)
    assert put.json()["resourceType"] == "OperationOutcome"


def real_sender(body: dict[str, Any]) -> dict[str, Any]:
    """What HIS FHIR modules write: a date-only creation, the patient contained, the
    issuer a reference to a contained Organization."""
    resource = invoice_to_fhir(body)
    resource["creation"] = body["issuedAt"][:10]
    resource["contained"] = [
        {"resourceType": "Patient", "id": "pat", "identifier": [{"value": body["patientRef"]}]},
        {"resourceType": "Organization", "id": "org", "name": body["issuerName"]},
    ]
    resource["subject"] = {"reference": "#pat"}
    resource["issuer"] = {"reference": "#org"}
    return resource


async def test_what_real_senders_write_maps(endpoint: Endpoint, outbox: Outbox) -> None:
    body = demo_invoices(1, seed=56)[0]
    absolute = invoice_to_fhir({**body, "billNumber": "0000000999"})
    absolute["subject"] = {"reference": f"https://his.example/fhir/Patient/{body['patientRef']}"}
    async with httpx.AsyncClient(headers=AUTH | {"content-type": FHIR_JSON}) as http:
        for resource in (real_sender(body), absolute):
            answer = await http.post(f"{endpoint.base}/Invoice", content=dump_fhir_json(resource))
            assert answer.status_code == 202, answer.text
    stored = [json.loads(doc.body) for doc in outbox.next_batch(10)]
    assert stored[0]["issuedAt"] == body["issuedAt"][:10] + "T00:00:00+08:00"
    assert stored[0]["issuerName"] == body["issuerName"]
    assert [doc["patientRef"] for doc in stored] == [body["patientRef"]] * 2


async def test_every_problem_comes_back_in_one_outcome(endpoint: Endpoint) -> None:
    resource = invoice_to_fhir(demo_invoices(1, seed=57)[0])
    resource["issuer"] = {"reference": "Organization/elsewhere"}
    resource["subject"] = {"display": "somebody"}
    resource["status"] = "draft"
    async with httpx.AsyncClient(headers=AUTH | {"content-type": FHIR_JSON}) as http:
        answer = await http.post(f"{endpoint.base}/Invoice", content=dump_fhir_json(resource))
    assert answer.status_code == 422
    expressions = [issue["expression"][0] for issue in answer.json()["issue"]]
    assert {"Invoice.issuer.display", "Invoice.subject.identifier"} <= set(expressions)
    assert "Invoice.status" in expressions


async def test_without_the_credential_nothing_is_taken(endpoint: Endpoint, outbox: Outbox) -> None:
    resource = dump_fhir_json(invoice_to_fhir(demo_invoices(1, seed=58)[0]))
    async with httpx.AsyncClient(headers={"content-type": FHIR_JSON}) as http:
        anonymous = await http.post(f"{endpoint.base}/Invoice", content=resource)
        wrong = await http.post(
            f"{endpoint.base}/Invoice", content=resource, headers={"authorization": "Bearer no"}
        )
        metadata = await http.get(f"{endpoint.base}/metadata")
    assert (anonymous.status_code, wrong.status_code, metadata.status_code) == (401, 401, 200)
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert outbox.counts().queued == 0


def test_serving_beyond_loopback_needs_a_credential(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["fhir", "--serve", "--host", "0.0.0.0", "--port", "0"]
    assert main([*args, "--outbox", str(tmp_path / "o.db")]) == 1
    assert "give --credential-file" in capsys.readouterr().err
