"""The adapter acceptance scenarios against the real hub (`hub serve` in a subprocess).

The fake hub (fakehub.py) pins the contract; these show the real one keeps it: every
valid invoice anchored exactly once through hub crashes, an adapter SIGKILLed after its
AA, a wrong signature refused with BAD_SIGNATURE, and the file commands. SQLite always,
PostgreSQL when HUB_TEST_POSTGRES_URL is set.
"""

import asyncio
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.csv_export import write_csv_export
from adapters.fhir import dump_fhir_json, invoice_to_fhir
from adapters.hl7v2 import invoice_to_dft_p03, read_header
from adapters.mllp import hl7_key
from adapters.outbox import Outbox
from adapters.signing import DocumentSigner
from hub.cli import main as hub_main
from hub.documents.demo_data import demo_invoices
from hub.documents.invoice import invoice_document_id
from tests.adapters.realhub import HUB, RealHub
from tests.adapters.test_mllp import (
    AdapterRun,
    msa,
    plan_500,
    send_blocking,
    spawn_adapter,
    wait_until,
)


@pytest.fixture
def real_hub(database_url: str, tmp_path: Path) -> Iterator[RealHub]:
    hub = RealHub.create(database_url, tmp_path)
    try:
        yield hub
    finally:
        hub.close()


def key_file(tmp_path: Path, signer: DocumentSigner, name: str) -> Path:
    path = tmp_path / f"{name}.pem"
    path.write_bytes(signer.private_key_pem())
    return path


# ----------------------------------------------------------------- 500 over MLLP


async def test_500_messages_anchored_exactly_once_across_hub_crashes(
    real_hub: RealHub, tmp_path: Path
) -> None:
    await asyncio.to_thread(real_hub.start)
    outbox = Outbox(tmp_path / "outbox.db")
    plan = plan_500()
    async with AdapterRun(outbox, real_hub.url, real_hub.token, real_hub.signer) as run:
        await run.send(plan, range(0, 150))
        # SIGKILL while deliveries are in flight: a batch is anchored whole or not at all
        await asyncio.to_thread(real_hub.kill)
        await run.send(plan, range(150, 350))  # every valid one is still answered AA
        assert outbox.counts().queued > 100
        await asyncio.to_thread(real_hub.start)
        await run.send(plan, range(350, 420))
        await asyncio.to_thread(real_hub.kill)
        await run.send(plan, range(420, 500))
        await asyncio.to_thread(real_hub.start)
        await wait_until(lambda: outbox.counts().queued == 0, timeout=30)
    replies = run.replies

    for i, planned in enumerate(plan):
        assert msa(replies[i])[1:3] == [planned.expect, planned.control_id], replies[i]
    # every valid invoice is in the real ledger, once: one version, one leaf each
    valid_ids = {p.invoice_id for p in plan if p.expect == "AA" and p.invoice_id}
    anchored = await asyncio.to_thread(real_hub.anchored)
    assert set(anchored) == valid_ids and len(valid_ids) == 400
    assert all(len(versions) == 1 and versions[0][0] == 1 for versions in anchored.values())
    leaves = sorted(leaf for versions in anchored.values() for _, leaf in versions)
    assert leaves == list(range(400))
    assert await asyncio.to_thread(real_hub.tree_size) == 400
    # nothing AA'd is missing: each one settled as delivered, with the hub's leaf index
    for planned in plan:
        if planned.expect == "AA":
            key = hl7_key(read_header(planned.data.decode()).sender, planned.control_id)
            record = outbox.document(key)
            assert record is not None and record["state"] == "delivered"
            assert record["leafIndex"] == anchored[planned.invoice_id or ""][0][1]
    counts = outbox.counts()
    assert (counts.queued, counts.delivered, counts.rejected, counts.refused) == (0, 420, 0, 50)
    codes = {letter.code.split(":")[0] for letter in outbox.dead_letters()}
    assert codes == {"AE", "AR"}
    outbox.close()


# ----------------------------------------------------------------- SIGKILL the adapter


def start_adapter(hub: RealHub, outbox: Path, key: Path) -> tuple[subprocess.Popen[str], int]:
    return spawn_adapter(
        [
            *HUB,
            *("adapter", "mllp", "--port", "0", "--hub", hub.url, "--token", hub.token),
            *("--outbox", str(outbox), "--key", str(key), "--backoff-cap", "0.2"),
        ]
    )


def test_an_adapter_killed_after_aa_delivers_after_restart(
    real_hub: RealHub, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox.db"
    key = key_file(tmp_path, real_hub.signer, "hospital")
    bodies = demo_invoices(25, seed=77)
    # the hub is down, so what was AA'd can only be in the outbox when the adapter dies
    process, port = start_adapter(real_hub, outbox, key)
    try:
        for n, body in enumerate(bodies):
            reply = send_blocking(port, invoice_to_dft_p03(body, f"K{n}").encode())
            assert msa(reply)[1:3] == ["AA", f"K{n}"]
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL

    real_hub.start()
    assert real_hub.tree_size() == 0
    process, _ = start_adapter(real_hub, outbox, key)
    try:
        real_hub.wait_for_size(len(bodies))
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=10)
    assert returncode == 0
    anchored = real_hub.anchored()
    assert set(anchored) == {invoice_document_id(b) for b in bodies}
    assert real_hub.tree_size() == len(bodies)
    with Outbox(outbox) as box:
        assert box.counts().delivered == len(bodies)


# ----------------------------------------------------------------- signatures, files


def hl7_file(tmp_path: Path, bodies: list[dict]) -> Path:
    path = tmp_path / "bills.hl7"
    text = "".join(invoice_to_dft_p03(body, f"S-{n}") for n, body in enumerate(bodies))
    path.write_text(text, encoding="utf-8")
    return path


def test_a_wrong_signature_is_refused_by_the_hub_and_dead_lettered(
    real_hub: RealHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real_hub.start()
    bodies = demo_invoices(3, seed=91)
    path = hl7_file(tmp_path, bodies)
    outbox = str(tmp_path / "outbox.db")
    common = ["adapter", "hl7", str(path), "--outbox", outbox]
    common += ["--hub", real_hub.url, "--token", real_hub.token, "--wait", "20"]
    wrong = key_file(tmp_path, DocumentSigner.generate(), "wrong")
    assert hub_main([*common, "--key", str(wrong)]) == 1
    assert real_hub.tree_size() == 0
    capsys.readouterr()
    with Outbox(outbox) as box:
        letters = box.dead_letters()
    assert len(letters) == 3
    assert {(letter.kind, letter.code) for letter in letters} == {("rejected", "BAD_SIGNATURE")}
    assert {letter.document_id for letter in letters} == {invoice_document_id(b) for b in bodies}
    assert all(letter.reason for letter in letters)

    # unsigned is refused too: this hospital must sign
    unsigned = str(tmp_path / "unsigned.db")
    unsigned_args = [*common[:4], unsigned, *common[5:]]
    assert hub_main(unsigned_args) == 1
    with Outbox(unsigned) as box:
        assert box.counts().rejected == 3
    assert real_hub.tree_size() == 0

    # with the registered key, the requeued documents go through
    assert hub_main(["adapter", "requeue", "--outbox", outbox, "--all"]) == 0
    right = key_file(tmp_path, real_hub.signer, "right")
    assert hub_main([*common, "--key", str(right)]) == 0
    assert set(real_hub.anchored()) == {invoice_document_id(b) for b in bodies}


def test_fhir_and_csv_files_are_anchored_by_the_real_hub(
    real_hub: RealHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real_hub.start()
    bodies = demo_invoices(6, seed=93)
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": invoice_to_fhir(body)} for body in bodies[:3]],
    }
    fhir_file = tmp_path / "bundle.json"
    fhir_file.write_text(dump_fhir_json(bundle), encoding="utf-8")
    csv_file = tmp_path / "export.csv"
    csv_file.write_bytes(write_csv_export(bodies[2:], encoding="gb18030"))
    key = key_file(tmp_path, real_hub.signer, "hospital")
    common = ["--outbox", str(tmp_path / "outbox.db"), "--hub", real_hub.url]
    common += ["--token", real_hub.token, "--key", str(key), "--wait", "20"]
    assert hub_main(["adapter", "fhir", str(fhir_file), *common]) == 0
    assert hub_main(["adapter", "csv", str(csv_file), *common]) == 0
    out = capsys.readouterr().out
    assert "accepted 3, refused 0" in out and "accepted 4, refused 0" in out
    # bodies[2] came through both channels: one body, one leaf
    anchored = real_hub.anchored()
    assert set(anchored) == {invoice_document_id(b) for b in bodies}
    assert real_hub.tree_size() == 6
    # what the hub holds is the body the files carried, field for field
    query = "query($id: ID!) { document(id: $id) { body } }"
    for body in (bodies[0], bodies[5]):
        held = real_hub.graphql(query, {"id": invoice_document_id(body)})["document"]["body"]
        assert held == body


# ----------------------------------------------------------------- reversals


VERSIONS = "query($id: ID!) { document(id: $id) { version status body } }"


def test_reversals_from_csv_and_fhir_files_are_anchored_as_version_2(
    real_hub: RealHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real_hub.start()
    via_csv, via_fhir, unnamed = demo_invoices(3, seed=95)
    key = key_file(tmp_path, real_hub.signer, "hospital")
    common = ["--outbox", str(tmp_path / "outbox.db"), "--hub", real_hub.url]
    common += ["--token", real_hub.token, "--key", str(key), "--wait", "20"]
    issued = tmp_path / "issued.csv"
    issued.write_bytes(write_csv_export([via_csv, via_fhir, unnamed]))
    assert hub_main(["adapter", "csv", str(issued), *common]) == 0

    reversed_csv = tmp_path / "reversed.csv"
    reversal = {**via_csv, "status": "reversed"}
    reversed_csv.write_bytes(write_csv_export([reversal], supersedes=[1]))
    assert hub_main(["adapter", "csv", str(reversed_csv), *common]) == 0
    cancelled = invoice_to_fhir({**via_fhir, "status": "reversed"}, "R4B", supersedes=1)
    reversed_fhir = tmp_path / "reversed.json"
    reversed_fhir.write_text(dump_fhir_json(cancelled), encoding="utf-8")
    assert hub_main(["adapter", "fhir", str(reversed_fhir), *common]) == 0

    anchored = real_hub.anchored()
    for body in (via_csv, via_fhir):
        assert [version for version, _ in anchored[invoice_document_id(body)]] == [1, 2]
        held = real_hub.graphql(VERSIONS, {"id": invoice_document_id(body)})["document"]
        assert (held["version"], held["body"]) == (2, {**body, "status": "reversed"})

    # a reversal that names no version is refused, and says which field is missing
    capsys.readouterr()
    no_version = tmp_path / "no_version.csv"
    no_version.write_bytes(write_csv_export([{**unnamed, "status": "reversed"}]))
    assert hub_main(["adapter", "csv", str(no_version), *common]) == 1
    assert "the hub rejected 1 document(s)" in capsys.readouterr().err
    with Outbox(tmp_path / "outbox.db") as box:
        (letter,) = box.dead_letters()
    assert letter.document_id == invoice_document_id(unnamed)
    assert "supersedes: a reversal must name the version it reverses" in letter.reason
    assert [v for v, _ in real_hub.anchored()[invoice_document_id(unnamed)]] == [1]
