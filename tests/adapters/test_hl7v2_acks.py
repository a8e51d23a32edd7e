"""HL7 v2 acknowledgements and batch files."""

from datetime import UTC, datetime

import hl7
import pytest

from adapters.hl7v2 import (
    Hl7Error,
    ack,
    ack_batch,
    invoice_to_dft_p03,
    is_batch,
    parse_dft_p03,
    split_batch,
)
from hub.documents.demo_data import demo_invoices
from tests.adapters.hl7_messages import (
    batch_file,
    custom_delimiters,
    error_of,
    invoice,
    msa_of,
    outpatient,
    set_field,
)

# ----------------------------------------------------------------- ACKs


def test_aa_swaps_sender_and_receiver_and_echoes_the_control_id() -> None:
    message = invoice_to_dft_p03(invoice(), "ACK-1", "2.4")
    now = datetime(2026, 5, 1, 8, 30, tzinfo=UTC)
    reply = hl7.parse(ack(message, "AA", control_id="R1", now=now))
    assert str(reply["MSH.F3"]) == "LEDGERHUB"
    assert str(reply["MSH.F5"]) == "HIS"
    assert str(reply["MSH.F7"]) == "20260501083000+0000"
    assert str(reply.segment("MSH")(9)) == "ACK^P03^ACK"
    assert str(reply["MSH.F10"]) == "R1"
    assert str(reply["MSH.F12"]) == "2.4"
    assert str(reply["MSA.F1"]) == "AA"
    assert str(reply["MSA.F2"]) == "ACK-1"
    with pytest.raises(KeyError):
        reply.segment("ERR")


def test_v23_errors_use_err_1() -> None:
    message = set_field(invoice_to_dft_p03(invoice(), "V-1", "2.3"), "FT1", 6, "PY")
    error = error_of(message)
    reply = ack(message, "AE", error)
    assert "\rERR|FT1^1^6^103&Table value not found&HL70357\r" in reply
    assert str(hl7.parse(reply).segment("MSH")(9)) == "ACK^P03"


def test_ack_to_an_unreadable_message_still_answers() -> None:
    reply = ack("not hl7", "AR", Hl7Error("MSH", None, "no header", reject=True))
    parsed = hl7.parse(reply)
    assert str(parsed["MSA.F1"]) == "AR"
    assert str(parsed["MSA.F2"]) == ""
    with pytest.raises(ValueError):
        ack("x", "XX")


def test_ack_batch_wraps_and_counts() -> None:
    acks = [ack(invoice_to_dft_p03(invoice(), f"B{n}"), "AA") for n in range(3)]
    reply = ack_batch(acks)
    assert reply.startswith("BHS|^~\\&|")
    assert reply.endswith("BTS|3\r")
    assert reply.count("\rMSA|AA|") == 3


# ----------------------------------------------------------------- batches


def test_a_batch_file_splits_into_its_messages() -> None:
    bodies = demo_invoices(3, seed=4)
    messages = [invoice_to_dft_p03(body, f"F{n}") for n, body in enumerate(bodies)]
    text = batch_file(messages)
    assert is_batch(text)
    batch = split_batch(text)
    assert batch.problems == []
    assert [parse_dft_p03(m) for m in batch.messages] == bodies


def test_batch_envelope_faults_are_reported_and_messages_kept() -> None:
    messages = [invoice_to_dft_p03(body, f"F{n}") for n, body in enumerate(demo_invoices(2))]
    batch = split_batch(batch_file(messages, bts="5", fts=False))
    assert len(batch.messages) == 2
    assert [(p.segment, p.field) for p in batch.problems] == [("BTS", 1), ("FTS", None)]
    stray = split_batch("EVN|P03\r" + messages[0])
    assert len(stray.messages) == 1
    assert stray.problems[0].segment == "EVN"


def test_a_plain_run_of_messages_is_not_a_batch_but_splits() -> None:
    messages = [invoice_to_dft_p03(body, f"P{n}") for n, body in enumerate(demo_invoices(3))]
    text = "".join(messages)
    assert not is_batch(text)
    assert split_batch(text).messages == messages


# ----------------------------------------------------------------- ACKs in the sender's terms


def test_the_ack_speaks_the_message_delimiters() -> None:
    body = outpatient()
    message = custom_delimiters(invoice_to_dft_p03(body, "CD-1"))
    assert message.startswith("MSH#$%!&#")
    assert parse_dft_p03(message) == body
    reply = ack(message, "AA")
    msh = reply.split("\r")[0]
    assert msh.startswith("MSH#$%!&#")
    assert msh.split("#")[8] == "ACK$P03$ACK"
    bad = custom_delimiters(set_field(invoice_to_dft_p03(body, "CD-2"), "FT1", 6, "CD"))
    reply = ack(bad, "AE", error_of(bad))
    err = next(s for s in reply.split("\r") if s.startswith("ERR"))
    assert err.split("#")[2:4] == ["FT1$1$6", "103$Table value not found$HL70357"]
    assert "^" not in reply
    v23 = custom_delimiters(invoice_to_dft_p03(body, "CD-3", "2.3"))
    assert ack(v23, "AA").split("\r")[0].split("#")[8] == "ACK$P03"


def test_a_batch_ack_keeps_the_batch_delimiters() -> None:
    from adapters.hl7v2 import batch_encoding

    text = custom_delimiters(batch_file([invoice_to_dft_p03(invoice(), "B0")]))
    reply = ack_batch([ack(split_batch(text).messages[0], "AA")], encoding=batch_encoding(text))
    assert reply.startswith("BHS#$%!&#") and reply.endswith("\rBTS#1\r")


def test_an_unknown_character_set_is_ar_naming_the_control_id() -> None:
    message = invoice_to_dft_p03(invoice(), "CS-1").replace("UNICODE UTF-8", "KLINGON")
    error = error_of(message)
    assert (error.ack_code, error.field) == ("AR", 18)
    assert msa_of(ack(message, "AR", error))[1:3] == ["AR", "CS-1"]


def test_every_refusal_code_has_its_text() -> None:
    error = Hl7Error("MSH", None, "message larger than 10 bytes", code="104", reject=True)
    err = ack("", "AR", error).split("\r")[2]
    assert "104^Value too long^HL70357" in err
    assert err.split("|")[8] == "MSH: message larger than 10 bytes"
