"""``hub adapter json``: documents of any registered type, the definition read from the
hub's public ``/types``; and a hub outage (HTTP 503 UNAVAILABLE) logged as one."""

import json
import logging
from pathlib import Path

import pytest

from adapters.cli import main
from adapters.delivery import Backoff, Delivery
from adapters.hub_client import HubClient, HubUnavailable
from adapters.outbox import Outbox
from hub.documents.demo_data import demo_invoices
from hub.documents.invoice import INVOICE_TYPE, invoice_document_id
from tests.adapters.fakehub import FakeHub, FakeHubServer
from tests.adapters.test_delivery import doc

TOKEN = "hospital-token"
RECEIPT = {
    "name": "fiscal_receipt",
    "version": 2,
    "issuerKinds": ["agency"],
    "schema": {"type": "object"},
    "id": ["/billCode", "/billNumber"],
    "issuedAt": "/issuedAt",
}


def receipt(number: int) -> dict[str, str]:
    return {
        "billCode": "46010125",
        "billNumber": f"{number:010d}",
        "issuedAt": "2026-11-20T10:15:00+08:00",
        "amount": "50.00",
        "payerRef": f"P-{number:06d}",
    }


@pytest.fixture
def hub_with_types() -> FakeHubServer:
    hub = FakeHub()
    hub.types[("fiscal_receipt", 1)] = {**RECEIPT, "version": 1, "id": ["/billNumber"]}
    hub.types[("fiscal_receipt", 2)] = RECEIPT
    server = FakeHubServer(hub)
    server.start()
    yield server
    server.stop()


def test_ndjson_lines_of_a_registered_type_are_delivered_and_bad_lines_named(
    tmp_path: Path, hub_with_types: FakeHubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [json.dumps(receipt(1)), "", "{not json", json.dumps(receipt(2)), "[1, 2]"]
    lines.append(json.dumps({k: v for k, v in receipt(3).items() if k != "billNumber"}))
    path = tmp_path / "receipts.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    outbox = str(tmp_path / "outbox.db")
    common = ["--outbox", outbox, "--hub", hub_with_types.url, "--token", TOKEN]
    assert main(["json", str(path), "--type", "fiscal_receipt", *common]) == 1
    out, err = capsys.readouterr()
    assert "accepted 2, refused 3" in out
    assert f"{path}:3: not JSON" in err
    assert f"{path}:5: must be a JSON object" in err
    assert f"{path}:6: /billNumber: required field is missing" in err
    # The newest definition's id rule: billCode-billNumber.
    assert set(hub_with_types.hub.ledger) == {
        ("fiscal_receipt", "46010125-0000000001"),
        ("fiscal_receipt", "46010125-0000000002"),
    }
    with Outbox(outbox) as box:
        keys = {letter.key for letter in box.dead_letters()}
    assert keys == {f"json:{path}#3", f"json:{path}#5", f"json:{path}#6"}


def test_a_directory_of_single_documents_and_a_definition_file(
    tmp_path: Path, hub_with_types: FakeHubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for number in (2, 1):
        (folder / f"r{number}.json").write_text(json.dumps(receipt(number), indent=2))
    definition = tmp_path / "fiscal_receipt.json"
    definition.write_text(json.dumps(RECEIPT))
    outbox = str(tmp_path / "outbox.db")
    # Queued without a hub: the definition file says how the id is made.
    args = ["json", str(folder), "--type", "fiscal_receipt", "--outbox", outbox]
    assert main([*args, "--definition", str(definition)]) == 0
    assert "accepted 2, refused 0" in capsys.readouterr().out
    common = ["--outbox", outbox, "--hub", hub_with_types.url, "--token", TOKEN]
    assert main(["json", str(folder / "r1.json"), "--type", "fiscal_receipt", *common]) == 0
    assert len(hub_with_types.hub.ledger) == 2  # the re-read file was stored once


def test_an_unknown_type_or_no_way_to_know_it_is_one_clear_line(
    tmp_path: Path, hub_with_types: FakeHubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps(receipt(1)))
    outbox = str(tmp_path / "outbox.db")
    common = ["--outbox", outbox, "--hub", hub_with_types.url, "--token", TOKEN]
    assert main(["json", str(path), "--type", "school_record", *common]) == 1
    assert "the hub has no document type school_record" in capsys.readouterr().err
    assert main(["json", str(path), "--type", "school_record", "--outbox", outbox]) == 1
    assert "give --hub (its /types) or --definition FILE" in capsys.readouterr().err


def test_invoices_go_through_the_json_adapter_too(
    tmp_path: Path, hub: FakeHubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    bodies = demo_invoices(2, seed=41)
    path = tmp_path / "bills.ndjson"
    path.write_text("".join(json.dumps(body, ensure_ascii=False) + "\n" for body in bodies))
    common = ["--outbox", str(tmp_path / "o.db"), "--hub", hub.url, "--token", TOKEN]
    # Without a hub the invoice's id rule is known; with one, its /types says it.
    assert main(["json", str(path), "--type", INVOICE_TYPE, "--outbox", common[1]]) == 0
    hub.hub.types[(INVOICE_TYPE, 1)] = {
        "name": INVOICE_TYPE,
        "version": 1,
        "id": ["/billCode", "/billNumber"],
        "issuedAt": "/issuedAt",
    }
    assert main(["json", str(path), "--type", INVOICE_TYPE, *common]) == 0
    capsys.readouterr()
    assert {doc_id for _, doc_id in hub.hub.ledger} == {invoice_document_id(b) for b in bodies}


async def test_a_503_unavailable_is_logged_as_an_outage_and_the_outbox_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hub = FakeHub(unavailable=True)
    with Outbox(tmp_path / "o.db") as outbox, FakeHubServer(hub) as server:
        outbox.enqueue([doc(demo_invoices(1, seed=42)[0])])
        async with HubClient(server.url, TOKEN) as client:
            delivery = Delivery(outbox, client, backoff=Backoff(base=0.01, cap=0.02))
            with caplog.at_level(logging.WARNING, logger="adapters"):
                failed = await delivery.deliver_once()
            assert isinstance(failed.error, HubUnavailable)
            assert failed.error.code == "UNAVAILABLE"
            (line,) = [r for r in caplog.records if r.name.startswith("adapters")]
            assert line.getMessage().startswith("hub unavailable (1 in a row): hub answered")
            assert "hub is restarting" in line.getMessage()
            assert "protocol" not in line.getMessage()
            state = outbox.delivery_state()
            assert state is not None and state.kind == "unavailable"
            assert outbox.counts().queued == 1
            hub.unavailable = False
            assert (await delivery.deliver_once()).delivered == 1


def test_an_envelope_line_queues_a_new_version_with_its_supersedes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corrected = {**receipt(1), "amount": "45.00"}
    lines = [
        json.dumps(receipt(1)),
        json.dumps({"body": corrected, "supersedes": 1}),
        json.dumps({"body": corrected, "supersedes": 0}),
        json.dumps({"body": [corrected]}),
    ]
    path = tmp_path / "versions.ndjson"
    path.write_text("\n".join(lines) + "\n")
    definition = tmp_path / "type.json"
    definition.write_text(json.dumps(RECEIPT))
    outbox = str(tmp_path / "outbox.db")
    args = ["json", str(path), "--type", "fiscal_receipt", "--definition", str(definition)]
    assert main([*args, "--outbox", outbox]) == 1
    err = capsys.readouterr().err
    assert f"{path}:3: supersedes: must be a version number, 1 or more" in err
    assert f"{path}:4: body: must be a JSON object" in err
    with Outbox(outbox) as box:
        queued = box.next_batch(10)
    assert [(doc.id, doc.supersedes) for doc in queued] == [
        ("46010125-0000000001", None),
        ("46010125-0000000001", 1),
    ]
    assert json.loads(queued[1].body)["amount"] == "45.00"
