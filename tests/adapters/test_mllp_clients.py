"""What standard HL7 clients see of the MLLP listener: python-hl7's MLLP client sends,
hl7apy and python-hl7 read the acknowledgements. Character sets, control ids that must
come back, MSA-3's length, enhanced acknowledgement mode, masking a full resident id,
and the listener's Prometheus metrics."""

import asyncio
import codecs
import json
from collections.abc import AsyncIterator
from pathlib import Path

import hl7
import httpx
import pytest
from hl7.client import MLLPClient
from hl7apy.parser import parse_message
from prometheus_client.parser import text_string_to_metric_families

from adapters.hl7v2 import invoice_to_dft_p03, read_header
from adapters.metrics import serve_metrics
from adapters.mllp import Hl7Intake, MllpListener, hl7_key
from adapters.outbox import Outbox
from hub.documents.demo_data import demo_invoices
from tests.adapters.hl7_messages import set_field

START, END = b"\x0b", b"\x1c\r"


@pytest.fixture
async def listener(tmp_path: Path) -> AsyncIterator[MllpListener]:
    outbox = Outbox(tmp_path / "outbox.db")
    listener = MllpListener(Hl7Intake(outbox), max_message_bytes=64 * 1024)
    await listener.start("127.0.0.1", 0)
    yield listener
    await listener.stop()
    outbox.close()


async def send(port: int, data: bytes, encoding: str = "utf-8") -> bytes:
    """One message through python-hl7's MLLP client; the raw reply block."""

    def call() -> bytes:
        with MLLPClient("127.0.0.1", port, encoding=encoding) as client:
            client.socket.settimeout(30)
            return bytes(client.send_message(data))

    return await asyncio.to_thread(call)


def unframe(block: bytes) -> bytes:
    assert block.startswith(START) and block.endswith(END)
    return block[1:-2]


def message(control_id: str, **fields: str) -> str:
    text = invoice_to_dft_p03(demo_invoices(1, seed=21)[0], control_id)
    for position, value in fields.items():
        text = set_field(text, "MSH", int(position.removeprefix("msh")) - 1, value)
    return text


async def test_a_gb18030_message_is_answered_in_gb18030_naming_it(
    listener: MllpListener,
) -> None:
    text = message("GB-1", msh18="GB 18030-2000")
    reply = unframe(await send(listener.port, text.encode("gb18030")))
    parsed = parse_message(reply.decode("gb18030"), find_groups=False)
    assert parsed.msh.msh_18.value == "GB 18030-2000"
    assert parsed.msa.msa_1.value == "AA" and parsed.msa.msa_2.value == "GB-1"


@pytest.mark.parametrize("charset", ["GBK", "ISO IR58"])
async def test_an_unsupported_character_set_is_ar_unknown_character_set(
    listener: MllpListener, charset: str
) -> None:
    text = message("CS-2", msh18=charset)
    reply = hl7.parse(unframe(await send(listener.port, text.encode("gb18030"))).decode())
    assert [str(reply["MSA.F1"]), str(reply["MSA.F2"])] == ["AR", "CS-2"]
    assert str(reply["MSA.F3"]).startswith("MSH-18: unknown character set")


async def test_a_utf8_byte_order_mark_is_dropped_and_the_message_taken(
    listener: MllpListener,
) -> None:
    text = message("BOM-1")
    reply = hl7.parse(unframe(await send(listener.port, codecs.BOM_UTF8 + text.encode())).decode())
    assert [str(reply["MSA.F1"]), str(reply["MSA.F2"])] == ["AA", "BOM-1"]


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
async def test_a_utf16_message_is_refused_naming_its_control_id(
    listener: MllpListener, codec: str
) -> None:
    text = message("U16-1")
    reply = unframe(await send(listener.port, text.encode(codec)))
    answer = hl7.parse(reply.decode("utf-16" if codec == "utf-16" else codec))
    assert [str(answer["MSA.F1"]), str(answer["MSA.F2"])] == ["AR", "U16-1"]


async def test_msa_3_keeps_within_80_characters_and_err_has_the_detail(
    listener: MllpListener,
) -> None:
    text = set_field(message("LONG-1"), "FT1", 11, "abc")
    reply = parse_message(
        unframe(await send(listener.port, text.encode())).decode(), find_groups=False
    )
    assert reply.msa.msa_1.value == "AE"
    assert len(reply.msa.msa_3.value) <= 80
    detail = reply.err.err_8.value
    assert len(detail) > 80 and detail.startswith(reply.msa.msa_3.value.removesuffix("..."))


async def exchange(port: int, data: bytes, replies: int) -> list[str]:
    """Send one block; read ``replies`` blocks, then make sure no other follows."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(START + data + END)
    await writer.drain()
    blocks = [
        (await asyncio.wait_for(reader.readuntil(END), 30))[1:-2].decode() for _ in range(replies)
    ]
    # A second message on the same connection: its answer must be the next block.
    writer.write(START + message("NEXT", msh15="", msh16="").encode() + END)
    await writer.drain()
    following = (await asyncio.wait_for(reader.readuntil(END), 30))[1:-2].decode()
    assert str(hl7.parse(following)["MSA.F2"]) == "NEXT"
    writer.close()
    await writer.wait_closed()
    return blocks


@pytest.mark.parametrize(
    ("accept", "application", "valid", "expected"),
    [
        ("AL", "AL", True, ["CA", "AA"]),
        ("AL", "NE", True, ["CA"]),
        ("AL", "ER", True, ["CA"]),
        ("AL", "ER", False, ["CA", "AE"]),
        ("NE", "AL", True, ["AA"]),
        ("ER", "SU", True, ["AA"]),
        ("SU", "SU", False, ["CA"]),
        ("NE", "NE", True, []),
    ],
)
async def test_enhanced_mode_sends_commit_then_application_acks_as_asked(
    listener: MllpListener, accept: str, application: str, valid: bool, expected: list[str]
) -> None:
    text = message(f"EN-{accept}-{application}-{valid}", msh15=accept, msh16=application)
    if not valid:
        text = set_field(text, "FT1", 6, "CD")
    blocks = await exchange(listener.port, text.encode(), len(expected))
    codes = [parse_message(block, find_groups=False).msa.msa_1.value for block in blocks]
    assert codes == expected
    for block in blocks:
        assert str(hl7.parse(block)["MSA.F2"]) == f"EN-{accept}-{application}-{valid}"


async def test_a_full_resident_id_is_masked_before_it_is_stored(
    listener: MllpListener,
) -> None:
    masked = demo_invoices(1, seed=21)[0]["payer"]["idMasked"]
    text = message("ID-1").replace(f"{masked}^^^^NNCHN", "460100199001011234^^^^NNCHN")
    assert "460100199001011234" in text
    reply = hl7.parse(unframe(await send(listener.port, text.encode())).decode())
    assert str(reply["MSA.F1"]) == "AA"
    (stored,) = listener.intake.outbox.next_batch(10)
    assert stored.key == hl7_key(read_header(text).sender, "ID-1")
    assert json.loads(stored.body)["payer"]["idMasked"] == "460***********1234"


async def test_metrics_show_queue_depth_dead_letters_lag_and_ack_latency(
    listener: MllpListener,
) -> None:
    outbox = listener.intake.outbox
    server, thread = serve_metrics("127.0.0.1", 0, str(outbox.path))
    try:
        await send(listener.port, message("MX-1").encode())
        await send(listener.port, set_field(message("MX-2"), "FT1", 6, "CD").encode())
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"http://127.0.0.1:{server.server_port}/metrics")
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples
        }
        assert samples[("hub_adapter_outbox_queued", ())] == 1
        assert samples[("hub_adapter_dead_letters", (("kind", "refused"),))] == 1
        assert samples[("hub_adapter_dead_letters", (("kind", "rejected"),))] == 0
        assert samples[("hub_adapter_delivery_lag_seconds", ())] >= 0
        assert samples[("hub_adapter_ack_seconds_count", ())] >= 2
    finally:
        server.shutdown()
        thread.join()


async def test_a_gb18030_batch_is_answered_in_gb18030(listener: MllpListener) -> None:
    messages = [message(f"GBB-{n}", msh3="收费系统", msh18="GB 18030-2000") for n in range(2)]
    batch = "BHS|^~\\&|HIS\r" + "".join(messages) + "BTS|2\r"
    reply = unframe(await send(listener.port, batch.encode("gb18030"))).decode("gb18030")
    acks = [line for line in reply.split("\r") if line.startswith("MSH")]
    assert [ack.split("|")[17] for ack in acks] == ["GB 18030-2000"] * 2
    # The sending application comes back as MSH-5, readable in the set the ACKs name.
    assert [ack.split("|")[4] for ack in acks] == ["收费系统"] * 2
