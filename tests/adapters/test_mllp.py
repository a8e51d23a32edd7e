"""The MLLP listener: ACKs only once stored, refusals, framing, batches, restarts."""

import asyncio
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.delivery import Backoff, Delivery
from adapters.hl7v2 import invoice_to_dft_p03, read_header
from adapters.hub_client import HubClient
from adapters.mllp import Hl7Intake, MllpListener, hl7_key
from adapters.outbox import Outbox
from adapters.signing import DocumentSigner
from hub.documents.demo_data import demo_invoices
from hub.documents.invoice import invoice_document_id
from tests.adapters.fakehub import FakeHub, FakeHubServer
from tests.adapters.hl7_messages import replace_segment, set_field

TOKEN = "hospital-token"
START, END = b"\x0b", b"\x1c\r"
ROOT = Path(__file__).resolve().parents[2]


class MllpClient:
    """A plain TCP client speaking MLLP framing, as a HIS interface engine would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> "MllpClient":
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, data: bytes) -> str:
        self.writer.write(START + data + END)
        await self.writer.drain()
        block = await asyncio.wait_for(self.reader.readuntil(END), 30)
        assert block.startswith(START)
        return block[1:-2].decode("utf-8")

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def msa(reply: str) -> list[str]:
    line = next(s for s in reply.split("\r") if s.startswith("MSA|"))
    return line.split("|")


async def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@dataclass
class Adapter:
    outbox: Outbox
    listener: MllpListener
    intake: Hl7Intake

    @property
    def port(self) -> int:
        return self.listener.port


@pytest.fixture
async def adapter(tmp_path: Path) -> AsyncIterator[Adapter]:
    outbox = Outbox(tmp_path / "outbox.db")
    intake = Hl7Intake(outbox)
    listener = MllpListener(intake, max_message_bytes=64 * 1024)
    await listener.start("127.0.0.1", 0)
    yield Adapter(outbox, listener, intake)
    await listener.stop()
    outbox.close()


# ----------------------------------------------------------------- one connection


async def test_aa_only_once_stored_and_duplicates_stored_once(adapter: Adapter) -> None:
    body = demo_invoices(1, seed=1)[0]
    message = invoice_to_dft_p03(body, "M-1")
    key = hl7_key(read_header(message).sender, "M-1")
    client = await MllpClient.connect(adapter.port)
    first = await client.send(message.encode())
    assert msa(first)[1:3] == ["AA", "M-1"]
    record = adapter.outbox.document(key)
    assert record is not None and record["state"] == "queued"
    again = await client.send(message.encode())
    assert msa(again)[1:3] == ["AA", "M-1"]
    assert adapter.outbox.counts().queued == 1
    # the same control id with other content is not silently dropped
    other = invoice_to_dft_p03({**body, "checkCode": "ZZZZZZ"}, "M-1")
    reused = await client.send(other.encode())
    assert msa(reused)[1:3] == ["AE", "M-1"]
    assert "205^Duplicate key identifier" in reused
    await client.close()


async def test_refusals_are_answered_and_dead_lettered_without_patient_data(
    adapter: Adapter,
) -> None:
    body = demo_invoices(1, seed=2)[0]
    name = body["payer"]["name"]
    bad = replace_segment(invoice_to_dft_p03(body, "R-1"), "ZEB", None)
    wrong_type = set_field(invoice_to_dft_p03(body, "R-2"), "MSH", 8, "ADT^A01^ADT_A01")
    client = await MllpClient.connect(adapter.port)
    reply = await client.send(bad.encode())
    assert msa(reply)[1:3] == ["AE", "R-1"]
    assert "ERR||ZEB^1|100^" in reply
    reply = await client.send(wrong_type.encode())
    assert msa(reply)[1:3] == ["AR", "R-2"]
    await client.close()
    letters = {letter.key: letter for letter in adapter.outbox.dead_letters()}
    sender = read_header(bad).sender
    assert letters[hl7_key(sender, "R-1")].code == "AE:100"
    assert letters[hl7_key(sender, "R-1")].reason == "ZEB: required segment is missing"
    assert letters[hl7_key(sender, "R-2")].code == "AR:200"
    assert all(name not in repr(letter) for letter in letters.values())
    # the raw message stays in the hospital's own outbox file, for the operator to fix
    db = sqlite3.connect(adapter.outbox.path)
    raws = [row[0].decode() for row in db.execute("SELECT raw FROM refusals")]
    db.close()
    assert bad in raws


async def test_framing_errors_and_oversized_messages_are_ar(adapter: Adapter) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", adapter.port)
    writer.write(b"no start block" + END)
    await writer.drain()
    reply = (await reader.readuntil(END))[1:-2].decode()
    assert msa(reply)[1] == "AR"
    writer.write(START + b"MSH|" + b"x" * (70 * 1024) + END)
    await writer.drain()
    reply = (await reader.readuntil(END))[1:-2].decode()
    assert msa(reply)[1] == "AR"
    assert "larger than" in reply
    # the connection still works afterwards
    body = demo_invoices(1, seed=3)[0]
    writer.write(START + invoice_to_dft_p03(body, "OK-1").encode() + END)
    await writer.drain()
    reply = (await reader.readuntil(END))[1:-2].decode()
    assert msa(reply)[1:3] == ["AA", "OK-1"]
    writer.close()
    assert adapter.outbox.counts().refused == 2


async def test_a_batch_block_gets_a_batch_of_acks(adapter: Adapter) -> None:
    bodies = demo_invoices(3, seed=4)
    messages = [invoice_to_dft_p03(b, f"B-{n}") for n, b in enumerate(bodies)]
    messages[1] = set_field(messages[1], "FT1", 6, "CD")
    block = "BHS|^~\\&|HIS\r" + "".join(messages) + "BTS|3\r"
    client = await MllpClient.connect(adapter.port)
    reply = await client.send(block.encode())
    await client.close()
    assert reply.startswith("BHS|") and reply.endswith("BTS|3\r")
    codes = re.findall(r"\rMSA\|(A[AER])\|(B-\d)", reply)
    assert codes == [("AA", "B-0"), ("AE", "B-1"), ("AA", "B-2")]
    assert adapter.outbox.counts().queued == 2


async def test_gb18030_messages_are_taken_and_answered_in_kind(adapter: Adapter) -> None:
    body = demo_invoices(1, seed=5)[0]
    message = invoice_to_dft_p03(body, "GB-1").replace("UNICODE UTF-8", "GB 18030-2000")
    client = await MllpClient.connect(adapter.port)
    reply = await client.send(message.encode("gb18030"))
    await client.close()
    assert msa(reply)[1:3] == ["AA", "GB-1"]
    (item,) = adapter.outbox.next_batch(10)
    assert item.id == invoice_document_id(body)
    assert body["payer"]["name"] in item.body.decode()


async def test_a_stray_escape_is_refused_without_quoting_the_name(adapter: Adapter) -> None:
    message = set_field(
        invoice_to_dft_p03(demo_invoices(1, seed=6)[0], "X-1"), "PID", 5, "Li\\Wei\\Zhang^Ming"
    )
    client = await MllpClient.connect(adapter.port)
    reply = await client.send(message.encode())
    await client.close()
    assert msa(reply)[1:4] == ["AE", "X-1", "PID[1]-5: unsupported escape sequence"]
    assert "Wei" not in reply
    (letter,) = adapter.outbox.dead_letters()
    assert letter.reason == "PID[1]-5: unsupported escape sequence"


async def test_an_oversized_message_is_ar_naming_its_control_id(adapter: Adapter) -> None:
    body = demo_invoices(1, seed=7)[0]
    message = invoice_to_dft_p03(body, "BIG-1")
    padding = "NTE|1||" + "x" * (70 * 1024) + "\r"
    client = await MllpClient.connect(adapter.port)
    reply = await client.send((message + padding).encode())
    assert msa(reply)[1:3] == ["AR", "BIG-1"]
    err = reply.split("\r")[2]
    assert "104^Value too long^HL70357" in err
    assert err.split("|")[8] == "MSH: message larger than 65536 bytes"
    # the whole block was skipped: the next message on the connection is read whole
    reply = await client.send(invoice_to_dft_p03(body, "OK-2").encode())
    assert msa(reply)[1:3] == ["AA", "OK-2"]
    await client.close()
    (letter,) = adapter.outbox.dead_letters()
    assert letter.key == hl7_key(read_header(message).sender, "BIG-1")


async def test_a_locked_outbox_is_answered_ar_207_within_seconds(
    adapter: Adapter, caplog: pytest.LogCaptureFixture
) -> None:
    message = invoice_to_dft_p03(demo_invoices(1, seed=8)[0], "L-1")
    holder = sqlite3.connect(adapter.outbox.path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    client = await MllpClient.connect(adapter.port)
    try:
        started = time.monotonic()
        with caplog.at_level("INFO", logger="adapters"):
            reply = await client.send(message.encode())
        waited = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert msa(reply)[1:3] == ["AR", "L-1"]
    assert "207^Application internal error" in reply
    assert waited < 10  # one short busy timeout, not two of 30 s
    # one line for the operator, no traceback; the message is fine, so no dead letter
    records = [r for r in caplog.records if r.name.startswith("adapters")]
    assert [(r.levelname, r.exc_info) for r in records] == [("WARNING", None)]
    assert "database is locked" in records[0].getMessage()
    assert adapter.outbox.counts().refused == 0
    # once the file is free, the sender's retry is stored and acknowledged
    reply = await client.send(message.encode())
    assert msa(reply)[1:3] == ["AA", "L-1"]
    await client.close()
    assert adapter.outbox.counts().queued == 1


# ----------------------------------------------------------------- 500 messages


@dataclass
class Planned:
    control_id: str
    data: bytes
    expect: str  # AA | AE | AR
    invoice_id: str | None = None  # the invoice it should anchor
    segment: str = ""  # the segment an AE/AR must name


def _corruptions() -> list[tuple[str, Callable[[str], str]]]:
    return [
        ("ZEB", lambda m: replace_segment(m, "ZEB", None)),
        ("FT1", lambda m: set_field(m, "FT1", 11, "999.99&CNY", occurrence=2)),
        ("FT1", lambda m: set_field(m, "FT1", 8, "massage")),
        ("FT1", lambda m: set_field(m, "FT1", 6, "CD")),
        ("PV1", lambda m: set_field(m, "PV1", 2, "X")),
        ("PID", lambda m: set_field(m, "PID", 5, "\\Zbroken")),
        ("PID", lambda m: replace_segment(m, "PID", None)),
        ("ZEB", lambda m: set_field(m, "ZEB", 4, "bad!")),
        ("ZEB", lambda m: set_field(m, "ZEB", 6, "-1.00")),
        ("MSH", lambda m: set_field(m, "MSH", 9, "")),
    ]


def _rejections() -> list[Callable[[str], str]]:
    return [
        lambda m: set_field(m, "MSH", 8, "ADT^A01^ADT_A01"),
        lambda m: set_field(m, "MSH", 8, "DFT^P11^DFT_P11"),
        lambda m: set_field(m, "MSH", 11, "2.7"),
        lambda m: set_field(m, "MSH", 10, "T"),
    ]


def plan_500() -> list[Planned]:
    rng = random.Random(500)
    invoices = demo_invoices(420, seed=21)
    plan: list[Planned] = []
    for n, body in enumerate(invoices[:400]):
        cid = f"V{n:04d}"
        message = invoice_to_dft_p03(body, cid, rng.choice(["2.3", "2.4", "2.5", "2.5.1"]))
        plan.append(Planned(cid, message.encode(), "AA", invoice_document_id(body)))
    originals = list(plan)
    plan += rng.sample(originals, 30)  # the very same message again
    for n, body in enumerate(rng.sample(invoices[:400], 20)):  # same bill, new control id
        cid = f"N{n:04d}"
        message = invoice_to_dft_p03(body, cid)
        plan.append(Planned(cid, message.encode(), "AA", invoice_document_id(body)))
    corruptions = _corruptions()
    for n in range(30):
        cid = f"E{n:04d}"
        segment, corrupt = corruptions[n % len(corruptions)]
        message = corrupt(invoice_to_dft_p03(invoices[400 + n % 20], cid))
        # a missing control id leaves nothing to find it by but its position
        plan.append(Planned("" if segment == "MSH" else cid, message.encode(), "AE", None, segment))
    rejections = _rejections()
    for n in range(20):
        cid = f"R{n:04d}"
        message = rejections[n % len(rejections)](invoice_to_dft_p03(invoices[n], cid))
        plan.append(Planned(cid, message.encode(), "AR", None, "MSH"))
    rng.shuffle(plan)
    assert len(plan) == 500
    return plan


class AdapterRun:
    """An in-process adapter (MLLP listener, outbox, delivery to a hub) and a TCP sender."""

    def __init__(self, outbox: Outbox, url: str, token: str, signer: DocumentSigner) -> None:
        self.outbox = outbox
        self.client = HubClient(url, token)
        self.delivery = Delivery(
            outbox,
            self.client,
            signer=signer,
            batch_size=40,
            backoff=Backoff(base=0.02, cap=0.2),
            poll_interval=0.05,
        )
        self.listener = MllpListener(Hl7Intake(outbox, on_enqueued=self.delivery.wake))
        self.replies: dict[int, str] = {}

    async def __aenter__(self) -> "AdapterRun":
        await self.listener.start("127.0.0.1", 0)
        self._delivering = asyncio.create_task(self.delivery.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.delivery.stop()
        await asyncio.wait_for(self._delivering, 10)
        await self.listener.stop()
        await self.client.aclose()

    async def send(self, plan: list["Planned"], indexes: range, connections: int = 4) -> None:
        """Send plan[i] for i in `indexes` over `connections` MLLP connections at once."""

        async def one_connection(lane: int) -> None:
            mllp = await MllpClient.connect(self.listener.port)
            for i in indexes[lane::connections]:
                self.replies[i] = await mllp.send(plan[i].data)
            await mllp.close()

        await asyncio.gather(*(one_connection(lane) for lane in range(connections)))


async def test_500_messages_with_the_hub_down_in_the_middle(tmp_path: Path) -> None:
    signer = DocumentSigner.generate()
    hub = FakeHub(token=TOKEN, public_key=signer.public_key())
    server = FakeHubServer(hub)
    server.start()
    outbox = Outbox(tmp_path / "outbox.db")
    plan = plan_500()
    try:
        async with AdapterRun(outbox, server.url, TOKEN, signer) as run:
            await run.send(plan, range(0, 150))
            await asyncio.to_thread(server.stop)
            anchored_before = len(hub.ledger)
            await run.send(plan, range(150, 350))  # every valid one is still answered AA
            assert len(hub.ledger) == anchored_before
            queued_while_down = outbox.counts().queued
            assert queued_while_down > 100
            await asyncio.to_thread(server.start)
            await run.send(plan, range(350, 500))
            await wait_until(lambda: outbox.counts().queued == 0)
    finally:
        await asyncio.to_thread(server.stop)
    replies = run.replies

    # every message got the answer it deserved, for its own control id
    for i, planned in enumerate(plan):
        fields = msa(replies[i])
        assert fields[1] == planned.expect, (planned.control_id, replies[i])
        assert fields[2] == planned.control_id
        if planned.expect != "AA":
            assert planned.segment in replies[i].split("\r")[2]  # the ERR segment names it
    # nothing acknowledged AA is missing: every one is delivered, and anchored exactly once
    valid_ids = {p.invoice_id for p in plan if p.expect == "AA" and p.invoice_id}
    assert len(valid_ids) == 400
    assert {doc_id for _, doc_id in hub.ledger} == valid_ids
    assert all(hub.created[doc_id] == 1 for doc_id in valid_ids)
    for planned in plan:
        if planned.expect == "AA":
            key = hl7_key(read_header(planned.data.decode()).sender, planned.control_id)
            record = outbox.document(key)
            assert record is not None and record["state"] == "delivered"
    counts = outbox.counts()
    assert (counts.queued, counts.delivered, counts.rejected) == (0, 420, 0)
    assert hub.statuses["DUPLICATE"] >= 20  # the re-sent bills, answered DUPLICATE
    # every malformed or unwanted message sits in the dead letters with its reason
    letters = {letter.key: letter for letter in outbox.dead_letters()}
    refused = [p for p in plan if p.expect != "AA"]
    assert counts.refused == len(refused) == 50
    for planned in refused:
        if not planned.control_id:
            continue
        key = hl7_key(read_header(planned.data.decode()).sender, planned.control_id)
        letter = letters[key]
        assert letter.code.startswith(planned.expect + ":")
        assert letter.reason.startswith(planned.segment)
    outbox.close()


# ----------------------------------------------------------------- SIGKILL


def spawn_adapter(command: list[str], cwd: Path | None = None) -> tuple[subprocess.Popen[str], int]:
    """Start an MLLP adapter process; it and the port it says it listens on."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    if match is None:
        process.kill()
        raise AssertionError(f"adapter did not start: {line!r}")
    return process, int(match[1])


def start_adapter(outbox: Path, hub_url: str) -> tuple[subprocess.Popen[str], int]:
    return spawn_adapter(
        [
            sys.executable,
            "-m",
            "adapters.cli",
            "mllp",
            "--port",
            "0",
            "--hub",
            hub_url,
            "--token",
            TOKEN,
            "--outbox",
            str(outbox),
            "--backoff-cap",
            "0.2",
        ],
        cwd=ROOT,
    )


def send_blocking(port: int, data: bytes) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(START + data + END)
        reply = b""
        while not reply.endswith(END):
            chunk = sock.recv(65536)
            assert chunk, "connection closed before the ACK"
            reply += chunk
    return reply[1:-2].decode()


def test_an_adapter_killed_after_aa_delivers_after_restart(tmp_path: Path) -> None:
    hub = FakeHub(token=TOKEN)
    server = FakeHubServer(hub)
    server.start()
    server.stop()  # keep the port; the hub is down
    outbox = tmp_path / "outbox.db"
    bodies = demo_invoices(25, seed=77)
    process, port = start_adapter(outbox, server.url)
    try:
        for n, body in enumerate(bodies):
            reply = send_blocking(port, invoice_to_dft_p03(body, f"K{n}").encode())
            assert msa(reply)[1:3] == ["AA", f"K{n}"]
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL
    assert hub.ledger == {}

    server.start()
    process, _ = start_adapter(outbox, server.url)
    try:
        hub.wait_until(lambda h: len(h.ledger) >= len(bodies))
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=10)
        server.stop()
    assert returncode == 0
    assert {doc_id for _, doc_id in hub.ledger} == {invoice_document_id(b) for b in bodies}
    with Outbox(outbox) as box:
        assert box.counts().delivered == len(bodies)
