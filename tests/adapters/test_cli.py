"""`hub adapter ...` as an operator runs it: intake, outbox, dead letters, requeue."""

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.cli import main
from adapters.csv_export import write_csv_export
from adapters.fhir import dump_fhir_json, invoice_to_fhir
from adapters.hl7v2 import invoice_to_dft_p03
from adapters.outbox import Outbox
from adapters.signing import DocumentSigner
from hub.documents.demo_data import demo_invoices
from hub.documents.invoice import invoice_document_id
from tests.adapters.fakehub import FakeHub, FakeHubServer
from tests.adapters.test_hl7v2 import set_field

TOKEN = "hospital-token"


def hl7_batch(tmp_path: Path, bad: bool = True) -> tuple[Path, list[dict]]:
    bodies = demo_invoices(4, seed=31)
    messages = [invoice_to_dft_p03(body, f"F-{n}") for n, body in enumerate(bodies)]
    if bad:
        messages[2] = set_field(messages[2], "FT1", 6, "CD")
    text = "FHS|^~\\&|HIS\rBHS|^~\\&|HIS\r" + "".join(messages) + "BTS|4\rFTS|1\r"
    path = tmp_path / "bills.hl7"
    path.write_text(text.replace("\r", "\r\n"), encoding="utf-8")
    return path, [b for n, b in enumerate(bodies) if not (bad and n == 2)]


def run(*argv: str) -> int:
    return main([*argv])


def test_an_hl7_batch_file_is_queued_delivered_and_reported(
    tmp_path: Path, hub: FakeHubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path, good = hl7_batch(tmp_path)
    outbox = str(tmp_path / "outbox.db")
    common = ["--outbox", outbox, "--hub", hub.url, "--token", TOKEN]
    assert run("hl7", str(path), *common) == 1  # one message refused
    out, err = capsys.readouterr()
    assert "accepted 3, refused 1" in out
    assert "delivered 3, queued 0, dead 1" in out
    assert "F-2: AE FT1[1]-6: transaction type must be CG (charge)" in err
    assert {doc_id for _, doc_id in hub.hub.ledger} == {invoice_document_id(b) for b in good}
    # the same file again: nothing new is stored or anchored
    assert run("hl7", str(path), *common) == 1
    capsys.readouterr()
    assert sum(hub.hub.created.values()) == 3

    assert run("status", "--outbox", outbox, "--dead") == 0
    out, _ = capsys.readouterr()
    assert "queued      0" in out
    assert "delivered   3" in out
    assert "dead        1 (rejected by the hub 0, refused on arrival 1)" in out
    assert "refused" in out and "AE:103 x2: FT1[1]-6" in out
    assert all(body["payer"]["name"] not in out for body in demo_invoices(4, seed=31))

    assert run("status", "--outbox", outbox, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["queued"], report["delivered"], report["deadLettered"]) == (0, 3, 1)
    assert report["deadLetters"][0]["reason"].startswith("FT1[1]-6")
    assert report["delivery"]["kind"] == "ok"


def test_without_a_hub_documents_wait_in_the_outbox(
    tmp_path: Path, hub: FakeHubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = hl7_batch(tmp_path, bad=False)
    outbox = str(tmp_path / "outbox.db")
    assert run("hl7", str(path), "--outbox", outbox) == 0
    assert "accepted 4, refused 0" in capsys.readouterr().out
    hub.stop()
    down = ["--outbox", outbox, "--hub", hub.url, "--token", TOKEN, "--backoff-cap", "0.05"]
    assert run("hl7", str(path), *down, "--wait", "0.3") == 1
    err = capsys.readouterr().err
    assert "4 still queued" in err and "unreachable" in err
    hub.start()
    assert run("hl7", str(path), *down) == 0
    assert len(hub.hub.ledger) == 4


def test_a_wrong_signature_is_dead_lettered_until_requeued(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registered, wrong = DocumentSigner.generate(), DocumentSigner.generate()
    server = FakeHubServer(FakeHub(token=TOKEN, public_key=registered.public_key()))
    server.start()
    try:
        keys = {}
        for name, signer in (("registered", registered), ("wrong", wrong)):
            keys[name] = tmp_path / f"{name}.pem"
            keys[name].write_bytes(signer.private_key_pem())
        path, _ = hl7_batch(tmp_path, bad=False)
        outbox = str(tmp_path / "outbox.db")
        common = ["--outbox", outbox, "--hub", server.url, "--token", TOKEN]
        # the hub rejected what this run delivered: not a success
        assert run("hl7", str(path), *common, "--key", str(keys["wrong"])) == 1
        assert server.hub.ledger == {}
        assert "hub adapter: the hub rejected 4 document(s)" in capsys.readouterr().err
        assert run("status", "--outbox", outbox, "--dead") == 0
        out = capsys.readouterr().out
        assert "rejected by the hub 4" in out
        assert "BAD_SIGNATURE: the signature does not verify" in out
        assert run("requeue", "--outbox", outbox, "--all") == 0
        assert "requeued 4" in capsys.readouterr().out
        assert run("hl7", str(path), *common, "--key", str(keys["registered"])) == 0
        assert len(server.hub.ledger) == 4
    finally:
        server.stop()


def test_fhir_and_csv_files_go_through_the_same_outbox(
    tmp_path: Path, hub: FakeHubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    bodies = demo_invoices(5, seed=41)
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": invoice_to_fhir(body)} for body in bodies[:2]],
    }
    fhir_file = tmp_path / "bundle.json"
    fhir_file.write_text(dump_fhir_json(bundle), encoding="utf-8")
    csv_file = tmp_path / "export.csv"
    csv_file.write_bytes(write_csv_export(bodies[1:], encoding="gb18030"))
    common = ["--outbox", str(tmp_path / "outbox.db"), "--hub", hub.url, "--token", TOKEN]
    assert run("fhir", str(fhir_file), *common) == 0
    assert run("csv", str(csv_file), *common) == 0
    out = capsys.readouterr().out
    assert "accepted 2, refused 0" in out and "accepted 4, refused 0" in out
    # bodies[1] came twice, through two channels: one body, one leaf
    assert {doc_id for _, doc_id in hub.hub.ledger} == {invoice_document_id(b) for b in bodies}
    assert hub.hub.statuses["DUPLICATE"] == 0
    assert hub.hub.created[invoice_document_id(bodies[1])] == 1


def test_operator_mistakes_get_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = hl7_batch(tmp_path, bad=False)
    outbox = str(tmp_path / "outbox.db")
    bad_key = tmp_path / "key.pem"
    bad_key.write_text("not a key")
    assert run("hl7", str(path), "--outbox", outbox, "--key", str(bad_key)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["hub adapter: error: the signing key is not a PEM private key"]
    assert run("hl7", str(path), "--outbox", outbox, "--hub", "http://x") == 1
    assert "--hub needs --token" in capsys.readouterr().err
    assert run("hl7", str(tmp_path / "missing.hl7"), "--outbox", outbox) == 1
    assert "No such file" in capsys.readouterr().err
    assert run("status", "--outbox", str(tmp_path / "none.db")) == 1
    assert "no outbox" in capsys.readouterr().err


def test_the_hub_command_carries_the_adapter_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hub.cli import main as hub_main

    path, _ = hl7_batch(tmp_path, bad=False)
    outbox = str(tmp_path / "outbox.db")
    assert hub_main(["adapter", "hl7", str(path), "--outbox", outbox]) == 0
    assert hub_main(["adapter", "status", "--outbox", outbox]) == 0
    assert "queued      4" in capsys.readouterr().out


# ----------------------------------------------------------------- FHIR files and directories


def fhir_file(path: Path, resource: dict) -> Path:
    path.write_text(dump_fhir_json(resource), encoding="utf-8")
    return path


def test_a_fhir_directory_queues_each_json_file_in_name_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bodies = demo_invoices(3, seed=51)
    folder = tmp_path / "fdir"
    folder.mkdir()
    fhir_file(folder / "b.json", invoice_to_fhir(bodies[1]))
    fhir_file(folder / "a.json", invoice_to_fhir(bodies[0]))
    broken = invoice_to_fhir(bodies[2])
    del broken["issuer"]
    fhir_file(folder / "c.json", broken)
    (folder / "notes.txt").write_text("not FHIR")
    (folder / "old.json.bak").write_text("{}")
    outbox = str(tmp_path / "outbox.db")
    assert run("fhir", str(folder), "--outbox", outbox) == 1  # c.json is refused
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines == [
        f"{folder / 'a.json'}: accepted 1, refused 0",
        f"{folder / 'b.json'}: accepted 1, refused 0",
        f"{folder / 'c.json'}: accepted 0, refused 1",
        "accepted 2, refused 1",
    ]
    assert f"{folder / 'c.json'}: Invoice.issuer: required element is missing" in err
    with Outbox(outbox) as box:
        queued = [item.id for item in box.next_batch(10)]
        assert box.counts().refused == 1
    assert queued == [invoice_document_id(bodies[0]), invoice_document_id(bodies[1])]

    empty = tmp_path / "empty"
    empty.mkdir()
    assert run("fhir", str(empty), "--outbox", outbox) == 1
    assert "a directory without *.json files" in capsys.readouterr().err


def test_a_fhir_transaction_file_is_all_or_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bodies = demo_invoices(2, seed=52)
    broken = invoice_to_fhir(bodies[1])
    broken["status"] = "draft"
    transaction: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": resource, "request": {"method": "POST", "url": "Invoice"}}
            for resource in (invoice_to_fhir(bodies[0]), broken)
        ],
    }
    path = fhir_file(tmp_path / "tx_bad.json", transaction)
    outbox = str(tmp_path / "outbox.db")
    assert run("fhir", str(path), "--outbox", outbox) == 1
    out, err = capsys.readouterr()
    assert "accepted 0, refused 2" in out
    assert "Bundle.entry[1].resource.status" in err
    assert "a transaction with bad entries: nothing of it queued" in err
    with Outbox(outbox) as box:
        assert box.counts().queued == 0
        assert box.counts().refused == 1  # the entry at fault
    # the same transaction fixed goes in whole
    transaction["entry"][1]["resource"] = invoice_to_fhir(bodies[1])
    fhir_file(path, transaction)
    assert run("fhir", str(path), "--outbox", outbox) == 0
    assert "accepted 2, refused 0" in capsys.readouterr().out


# ----------------------------------------------------------------- exit codes, secrets, logs


def test_a_file_command_fails_when_the_hub_rejects_what_it_delivered(
    tmp_path: Path, hub: FakeHubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    body = demo_invoices(1, seed=53)[0]
    common = ["--outbox", str(tmp_path / "outbox.db"), "--hub", hub.url, "--token", TOKEN]
    csv_file = tmp_path / "export.csv"
    csv_file.write_bytes(write_csv_export([body]))
    assert run("csv", str(csv_file), *common) == 0
    capsys.readouterr()
    # the same bill with another check code: the hub answers CONFLICT
    other = invoice_to_fhir({**body, "checkCode": "Zz99Zz"})
    path = fhir_file(tmp_path / "other.json", other)
    assert run("fhir", str(path), *common) == 1
    out, err = capsys.readouterr()
    assert "accepted 1, refused 0" in out and "dead 1" in out
    reasons = [line for line in err.splitlines() if line.startswith("hub adapter:")]
    assert reasons == [
        "hub adapter: the hub rejected 1 document(s) (see hub adapter status --dead)"
    ]


def test_a_hub_url_with_credentials_is_refused_without_showing_them(
    tmp_path: Path, hub: FakeHubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # httpx would send user:password as Basic auth in place of the bearer token.
    path, _ = hl7_batch(tmp_path, bad=False)
    outbox = str(tmp_path / "outbox.db")
    url = hub.url.replace("http://", "http://user:s3cretpw@")
    args = ["--outbox", outbox, "--hub", url, "--token", TOKEN]
    assert run("hl7", str(path), *args) == 1
    out, err = capsys.readouterr()
    assert "--hub: the hub URL must not carry a user or password" in err
    assert "s3cretpw" not in out + err
    assert hub.hub.requests == 0


def test_adapter_logs_are_one_json_object_a_line(
    tmp_path: Path, hub: FakeHubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    registered = DocumentSigner.generate()
    hub.hub.public_key = registered.public_key()  # an unsigned run is rejected: warnings
    path, _ = hl7_batch(tmp_path, bad=False)
    args = ["--outbox", str(tmp_path / "outbox.db"), "--hub", hub.url, "--token", TOKEN]
    assert run("hl7", str(path), *args, "-v") == 1
    err = capsys.readouterr().err.splitlines()
    logs = [json.loads(line) for line in err if line.startswith("{")]
    others = [line for line in err if not line.startswith("{")]
    assert others == ["hub adapter: the hub rejected 4 document(s) (see hub adapter status --dead)"]
    assert {"ts", "level", "logger", "message"} <= set(logs[0])
    rejected = [entry for entry in logs if entry["logger"] == "adapters.delivery"]
    assert len(rejected) == 4 and rejected[0]["level"] == "warning"
    assert "BAD_SIGNATURE" in rejected[0]["message"]
