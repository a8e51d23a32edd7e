"""HL7 v2 refusals: where the error points, which ACK code it earns, what it never shows."""

from decimal import Decimal

import pytest

from adapters.hl7v2 import (
    Hl7Error,
    ack,
    invoice_to_dft_p03,
    read_dft_p03,
    split_batch,
)
from hub.documents.demo_data import demo_invoices
from tests.adapters.hl7_messages import (
    batch_file,
    error_of,
    inpatient,
    invoice,
    replace_segment,
    segments,
    set_field,
)

# ----------------------------------------------------------------- errors


def test_missing_zeb_is_an_ae_naming_zeb() -> None:
    message = replace_segment(invoice_to_dft_p03(invoice(), "Z-2"), "ZEB", None)
    error = error_of(message)
    assert (error.segment, error.ack_code, error.code) == ("ZEB", "AE", "100")
    reply = ack(message, error.ack_code, error)
    assert "MSA|AE|Z-2|ZEB: required segment is missing" in reply
    assert "\rERR||ZEB^1|100^Segment sequence error^HL70357|E|" in reply


def test_a_wrong_amount_names_that_ft1_and_field_without_personal_data() -> None:
    body = inpatient()
    message = invoice_to_dft_p03(body, "A-1")
    amount = body["items"][2]["amount"]
    wrong = str(Decimal(amount) + 1)
    message = set_field(message, "FT1", 11, f"{wrong}&CNY", occurrence=3)
    error = error_of(message)
    assert (error.segment, error.sequence, error.field, error.code) == ("FT1", 3, 11, "102")
    assert "body.items[2].amount" in str(error)
    for secret in (body["payer"]["name"], body["patientRef"], body["payer"]["idMasked"]):
        assert secret not in str(error)
        assert secret not in ack(message, "AE", error)


def test_an_empty_item_name_names_its_ft1_field_and_component() -> None:
    message = invoice_to_dft_p03(inpatient(), "N-1")
    ft1 = [s for s in segments(message) if s.startswith("FT1|")][1]
    code = ft1.split("|")[7].split("^")[0]
    message = set_field(message, "FT1", 7, f"{code}^", occurrence=2)
    error = error_of(message)
    assert (error.segment, error.sequence, error.field, error.component) == ("FT1", 2, 7, 2)
    assert (error.code, error.ack_code) == ("101", "AE")
    assert "body.items[1].name" in str(error)


@pytest.mark.parametrize(
    ("segment", "position", "value", "where", "code"),
    [
        ("FT1", 8, "massage", ("FT1", 8), "103"),
        ("FT1", 6, "CD", ("FT1", 6), "103"),
        ("FT1", 10, "-1", ("FT1", 10), "102"),
        ("FT1", 11, "25.00&USD", ("FT1", 11), "102"),
        ("PV1", 2, "E", ("PV1", 2), "103"),
        ("PV1", 44, "2026-01-01", ("PV1", 44), "102"),
        ("ZEB", 2, "4601012", ("ZEB", 2), "102"),
        ("ZEB", 4, "", ("ZEB", 4), "102"),
        ("ZEB", 5, "yesterday", ("ZEB", 5), "102"),
        ("ZEB", 6, "1.005", ("ZEB", 6), "102"),
        ("ZEB", 14, "void", ("ZEB", 14), "103"),
        ("PID", 5, "", ("PID", 5), "101"),
    ],
)
def test_content_errors_name_segment_and_field(
    segment: str, position: int, value: str, where: tuple[str, int], code: str
) -> None:
    message = set_field(invoice_to_dft_p03(invoice(), "F-1"), segment, position, value)
    error = error_of(message)
    assert (error.segment, error.field) == where
    assert error.code == code
    assert error.ack_code == "AE"


@pytest.mark.parametrize(
    ("msh_index", "value", "code", "component"),
    [
        (8, "ADT^A01^ADT_A01", "200", 1),
        (8, "DFT^P11^DFT_P11", "201", 2),
        (11, "2.6", "203", None),
        (10, "T", "202", None),
    ],
)
def test_messages_we_do_not_take_are_ar(
    msh_index: int, value: str, code: str, component: int | None
) -> None:
    message = set_field(invoice_to_dft_p03(invoice(), "AR-1"), "MSH", msh_index, value)
    error = error_of(message)
    assert (error.ack_code, error.code, error.segment, error.component) == (
        "AR",
        code,
        "MSH",
        component,
    )
    assert ack(message, "AR", error).split("\r")[1].startswith("MSA|AR|AR-1|")


def test_missing_control_id_and_repeated_pid_are_ae() -> None:
    message = invoice_to_dft_p03(invoice(), "C-1")
    error = error_of(set_field(message, "MSH", 9, ""))
    assert (error.segment, error.field, error.code) == ("MSH", 10, "101")
    pid = next(s for s in segments(message) if s.startswith("PID|"))
    error = error_of(message.replace(pid, f"{pid}\r{pid}"))
    assert (error.segment, error.sequence, error.code) == ("PID", 2, "100")


def test_garbage_is_ar() -> None:
    for text in ("", "hello", "PID|1||x", "MSH|^~|x", "MSH|^^\\&|x"):
        with pytest.raises(Hl7Error) as caught:
            read_dft_p03(text)
        assert caught.value.ack_code == "AR"


# ----------------------------------------------------------------- no patient data in errors


@pytest.mark.parametrize(
    ("segment", "position", "value"),
    [
        ("PID", 5, "Li\\Wei\\Zhang^Ming"),
        ("PID", 3, "P-\\Wei\\001^^^^PI~460***********1234^^^^NNCHN"),
        ("PV1", 19, "MZ\\Wei\\01"),
        ("ZEB", 4, "Ab\\Wei\\1"),
    ],
)
def test_a_stray_escape_is_named_by_field_never_quoted(
    segment: str, position: int, value: str
) -> None:
    message = set_field(invoice_to_dft_p03(invoice(), "E-1"), segment, position, value)
    error = error_of(message)
    assert (error.segment, error.field, error.ack_code) == (segment, position, "AE")
    assert error.problem == "unsupported escape sequence"
    reply = ack(message, "AE", error)
    assert "Wei" not in reply and "Wei" not in str(error)


def test_a_currency_mismatch_does_not_quote_the_field() -> None:
    message = invoice_to_dft_p03(invoice(), "C-1")
    ft1 = next(s for s in segments(message) if s.startswith("FT1|")).split("|")
    message = set_field(message, "FT1", 11, ft1[11].replace("&CNY", "&Zhang"))
    error = error_of(message)
    assert (error.segment, error.field) == ("FT1", 11)
    assert "Zhang" not in str(error)


def test_a_batch_count_that_is_no_number_is_not_quoted() -> None:
    messages = [invoice_to_dft_p03(body, f"F{n}") for n, body in enumerate(demo_invoices(1))]
    batch = split_batch(batch_file(messages, bts="Zhang Wei"))
    assert [(p.segment, p.field) for p in batch.problems] == [("BTS", 1)]
    assert "Zhang" not in str(batch.problems[0])
