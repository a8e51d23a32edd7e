import copy
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import hl7
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.hl7v2 import (
    SUPPORTED_VERSIONS,
    Encoding,
    Hl7Error,
    ack,
    ack_batch,
    decode_message,
    escape,
    invoice_to_dft_p03,
    is_batch,
    parse_dft_p03,
    read_dft_p03,
    split_batch,
    unescape,
)
from hub.documents.demo_data import demo_invoices
from hub.documents.invoice import CATEGORIES, validate_invoice

PAYER = "符海琼"


def invoice(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(demo_invoices(1, seed=11)[0])
    body["payer"]["name"] = PAYER
    body.update(changes)
    return body


def outpatient() -> dict[str, Any]:
    return next(b for b in demo_invoices(40, seed=5) if b["visit"]["type"] == "outpatient")


def inpatient() -> dict[str, Any]:
    return next(b for b in demo_invoices(40, seed=5) if b["visit"]["type"] == "inpatient")


def segments(message: str) -> list[str]:
    return [s for s in message.split("\r") if s]


def replace_segment(message: str, name: str, new: str | None, occurrence: int = 1) -> str:
    out, seen = [], 0
    for segment in segments(message):
        if segment.startswith(name + "|"):
            seen += 1
            if seen == occurrence:
                if new is not None:
                    out.append(new)
                continue
        out.append(segment)
    return "\r".join(out) + "\r"


def set_field(message: str, name: str, position: int, value: str, occurrence: int = 1) -> str:
    seen = 0
    out = []
    for segment in segments(message):
        if segment.startswith(name + "|"):
            seen += 1
            if seen == occurrence:
                fields = segment.split("|")
                fields += [""] * (position + 1 - len(fields))
                fields[position] = value
                segment = "|".join(fields)
        out.append(segment)
    return "\r".join(out) + "\r"


def error_of(message: str) -> Hl7Error:
    with pytest.raises(Hl7Error) as caught:
        read_dft_p03(message)
    return caught.value


# ----------------------------------------------------------------- random valid invoices

_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from("|^~\\&\"' #*张三医院化验费"),
        st.characters(blacklist_categories=("Cc", "Cs")),
    ),
    min_size=1,
    max_size=24,
).filter(lambda text: bool(text.strip()))


def _decimal_text(value: Decimal, style: int) -> str:
    # Any spelling the invoice rules accept: 2 places, or as short as possible.
    text = f"{value:.2f}"
    if style == 1:
        text = text.rstrip("0").rstrip(".")
    elif style == 2 and text.endswith("0"):
        text = text[:-1]
    return text


@st.composite
def money_parts(draw: st.DrawFn, total: Decimal) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    cents = int(total * 100)
    a = draw(st.integers(0, cents))
    b = draw(st.integers(0, cents - a))
    c = draw(st.integers(0, cents - a - b))
    return tuple(Decimal(x) / 100 for x in (a, b, c, cents - a - b - c))  # type: ignore[return-value]


def money(value: Decimal) -> str:
    return f"{value:.2f}"


def quantity(value: Decimal) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text


def normal_form(body: dict[str, Any]) -> dict[str, Any]:
    """The body as every adapter writes it: money with 2 decimals, quantities bare."""
    out = copy.deepcopy(body)
    for item in out["items"]:
        item["quantity"] = quantity(Decimal(item["quantity"]))
        item["unitPrice"] = money(Decimal(item["unitPrice"]))
        item["amount"] = money(Decimal(item["amount"]))
    out["totals"] = {name: money(Decimal(value)) for name, value in out["totals"].items()}
    return out


@st.composite
def valid_invoices(draw: st.DrawFn, *, any_spelling: bool = False) -> dict[str, Any]:
    def style(normal: int) -> int:
        return draw(st.integers(0, 2)) if any_spelling else normal

    items = []
    total = Decimal(0)
    for _ in range(draw(st.integers(1, 6))):
        count = Decimal(draw(st.integers(1, 50_000))) / 100
        price = Decimal(draw(st.integers(0, 5_000_000))) / 100
        amount = (count * price).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        total += amount
        items.append(
            {
                "category": draw(st.sampled_from(sorted(CATEGORIES))),
                "code": draw(_TEXT),
                "name": draw(_TEXT),
                "quantity": _decimal_text(count, style(1)),
                "unitPrice": _decimal_text(price, style(0)),
                "amount": _decimal_text(amount, style(0)),
            }
        )
    fund, other, account, cash = draw(money_parts(total))
    self_pay = Decimal(draw(st.integers(0, int((account + cash) * 100)))) / 100
    moment = draw(
        st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31))
    ).replace(microsecond=0)
    offset = draw(st.integers(-12 * 4, 14 * 4)) * 15
    sign = "+" if offset >= 0 else "-"
    fraction = draw(st.sampled_from(["", ".5", ".25", ".125", ".1234"]))
    issued = (
        f"{moment:%Y-%m-%dT%H:%M:%S}{fraction}{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    )
    if draw(st.booleans()):
        admitted = draw(st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 1, 1)))
        discharged = admitted + timedelta(days=draw(st.integers(0, 60)))
        visit_dates: dict[str, str | None] = {
            "admittedOn": admitted.isoformat(),
            "dischargedOn": discharged.isoformat(),
        }
        visit_type = "inpatient"
    else:
        visit_dates = {"admittedOn": None, "dischargedOn": None}
        visit_type = draw(st.sampled_from(["outpatient", "inpatient"]))
    body = {
        "billCode": f"{draw(st.integers(0, 10**8 - 1)):08d}",
        "billNumber": f"{draw(st.integers(0, 10**10 - 1)):010d}",
        "checkCode": draw(st.text(alphabet="0123456789abcXYZ", min_size=6, max_size=6)),
        "issuedAt": issued,
        "issuerName": draw(_TEXT),
        "payer": {
            "name": draw(_TEXT),
            "idMasked": draw(st.sampled_from(["460***********1234", "*", "4*X", "**********"])),
        },
        "patientRef": draw(_TEXT),
        "visit": {
            "type": visit_type,
            "department": draw(_TEXT),
            "recordNumber": draw(_TEXT),
            **visit_dates,
        },
        "items": items,
        "totals": {
            "total": _decimal_text(total, style(0)),
            "insuranceFund": _decimal_text(fund, style(0)),
            "otherPayments": _decimal_text(other, style(0)),
            "personalAccount": _decimal_text(account, style(0)),
            "personalCash": _decimal_text(cash, style(0)),
            "selfPay": _decimal_text(self_pay, style(0)),
        },
        "currency": draw(st.sampled_from(["CNY", "HKD", "USD"])),
        "status": draw(st.sampled_from(["issued", "reversed"])),
    }
    validate_invoice(body)
    return body


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=valid_invoices(),
    version=st.sampled_from(SUPPORTED_VERSIONS),
    supersedes=st.none() | st.integers(1, 10**6),
)
def test_random_valid_invoices_survive_hl7_unchanged(
    body: dict[str, Any], version: str, supersedes: int | None
) -> None:
    assert normal_form(body) == body
    message = invoice_to_dft_p03(body, "CTRL-1", version, supersedes=supersedes)
    dft = read_dft_p03(message)
    assert dft.body == body
    assert dft.supersedes == supersedes
    assert dft.version == version
    assert dft.control_id == "CTRL-1"


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=valid_invoices(any_spelling=True))
def test_any_spelling_of_a_number_reads_as_every_adapter_writes_it(body: dict[str, Any]) -> None:
    assert parse_dft_p03(invoice_to_dft_p03(body, "CTRL-2")) == normal_form(body)


def test_hl7_numbers_are_normalised_not_rounded() -> None:
    body = outpatient()
    item = body["items"][0]
    item.update(quantity="1", unitPrice=item["amount"])
    validate_invoice(body)
    message = invoice_to_dft_p03(body, "NM-1")
    # NM allows a sign, leading zeros and trailing zeros; none of them change the value
    message = set_field(message, "FT1", 10, "+01.00")
    message = set_field(message, "FT1", 11, f"0{item['amount']}0&CNY")
    message = set_field(message, "FT1", 12, f"+{item['amount']}&CNY")
    message = set_field(message, "ZEB", 6, f"00{body['totals']['insuranceFund']}000")
    assert parse_dft_p03(message) == body
    too_fine = set_field(message, "ZEB", 7, "0.001")
    error = error_of(too_fine)
    assert (error.segment, error.field) == ("ZEB", 7)


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_demo_invoices_survive_every_version(version: str) -> None:
    for number, body in enumerate(demo_invoices(60, seed=2)):
        assert parse_dft_p03(invoice_to_dft_p03(body, f"C{number}", version)) == body


def test_python_hl7_reads_our_messages_the_same_way() -> None:
    # An independent parser agrees on structure and on every plain value.
    body = inpatient()
    message = invoice_to_dft_p03(body, "X-9")
    parsed = hl7.parse(message)
    assert str(parsed["MSH.F9.R1.C1"]) == "DFT"
    assert str(parsed["MSH.F9.R1.C2"]) == "P03"
    assert str(parsed["MSH.F10"]) == "X-9"
    assert str(parsed["PID.F3.R1.C1"]) == body["patientRef"]
    assert str(parsed["PID.F3.R2.C5"]) == "NNCHN"
    assert str(parsed["PV1.F2"]) == "I"
    assert str(parsed["PV1.F44"]) == body["visit"]["admittedOn"].replace("-", "")
    assert len(parsed.segments("FT1")) == len(body["items"])
    for number, item in enumerate(body["items"], start=1):
        ft1 = parsed.segments("FT1")(number)
        assert str(ft1.extract_field(1, 7, 1, 2)) == item["name"]
        assert str(ft1.extract_field(1, 8)) == item["category"]
        assert str(ft1.extract_field(1, 11, 1, 1, 1)) == item["amount"]
    zeb = parsed.segment("ZEB")
    assert [str(zeb(n)) for n in (2, 3, 4)] == [
        body["billCode"],
        body["billNumber"],
        body["checkCode"],
    ]


def test_delimiters_in_text_are_escaped_and_python_hl7_unescapes_them() -> None:
    body = invoice()
    body["items"][0]["name"] = "A|B^C~D\\E&F"
    message = invoice_to_dft_p03(body, "E-1")
    assert "A\\F\\B\\S\\C\\R\\D\\E\\E\\T\\F" in message
    ft1 = hl7.parse(message).segments("FT1")(1)
    assert ft1.extract_field(1, 7, 1, 2) == "A|B^C~D\\E&F"
    assert parse_dft_p03(message) == body


# ----------------------------------------------------------------- escapes, encodings


def test_hex_escapes_decode_as_utf8_even_across_sequences() -> None:
    body = invoice()
    message = invoice_to_dft_p03(body, "H-1")
    # 符 is E7 AC A6 in UTF-8: once whole, once split over three sequences
    whole = message.replace("|符海琼|", "|\\XE7ACA6\\海琼|")
    split = message.replace("|符海琼|", "|\\XE7\\\\XAC\\\\XA6\\海琼|")
    assert whole != message and split != message
    assert parse_dft_p03(whole)["payer"]["name"] == PAYER
    assert parse_dft_p03(split)["payer"]["name"] == PAYER


def test_formatting_escapes_and_the_null_value() -> None:
    enc = Encoding()
    assert unescape("a\\H\\b\\N\\c", enc) == "abc"
    assert unescape("x\\.sp2\\y", enc) == "xy"
    assert escape('""', enc) == "\\X2222\\"
    assert unescape(escape('""', enc), enc) == '""'
    with pytest.raises(ValueError, match="unterminated"):
        unescape("a\\Fb", enc)
    with pytest.raises(ValueError, match="unsupported"):
        unescape("\\Zfoo\\", enc)
    with pytest.raises(ValueError, match="hex"):
        unescape("\\XABC\\", enc)


@pytest.mark.parametrize(
    ("bad", "problem"), [("\\Fx", "unterminated"), ("\\Zpriv\\", "unsupported")]
)
def test_a_bad_escape_names_its_field(bad: str, problem: str) -> None:
    message = invoice_to_dft_p03(invoice(), "B-1")
    error = error_of(message.replace("|符海琼|", f"|{bad}|"))
    assert (error.segment, error.field, error.ack_code) == ("PID", 5, "AE")
    assert problem in error.problem


def test_other_delimiters_and_line_endings() -> None:
    body = outpatient()
    message = invoice_to_dft_p03(body, "D-1")
    assert "#" not in message and "@" not in message
    custom = message.replace("|", "#").replace("^", "@")
    assert parse_dft_p03(custom) == body
    assert parse_dft_p03(message.replace("\r", "\n")) == body
    assert parse_dft_p03(message.replace("\r", "\r\n")) == body


def test_gb18030_messages_decode_by_msh18() -> None:
    body = invoice()
    message = invoice_to_dft_p03(body, "G-1").replace("UNICODE UTF-8", "GB 18030-2000")
    data = message.encode("gb18030")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert parse_dft_p03(decode_message(data)) == body
    latin = message.replace("GB 18030-2000", "UNICODE UTF-8").encode("gb18030")
    with pytest.raises(Hl7Error) as caught:
        decode_message(latin)
    assert (caught.value.segment, caught.value.field) == ("MSH", 18)


# ----------------------------------------------------------------- optional and repeated


def test_pv1_is_optional_when_ft1_13_and_pid_18_stand_in() -> None:
    body = outpatient()
    message = replace_segment(invoice_to_dft_p03(body, "P-1"), "PV1", None)
    assert "PV1|" not in message
    assert parse_dft_p03(message) == body


def test_without_pv1_or_its_stand_ins_the_error_names_pv1() -> None:
    message = replace_segment(invoice_to_dft_p03(outpatient(), "P-2"), "PV1", None)
    message = set_field(message, "FT1", 13, "")
    error = error_of(message)
    assert (error.segment, error.field, error.code) == ("PV1", None, "100")


def test_repeated_ft1_become_items_in_order() -> None:
    body = inpatient()
    assert len(body["items"]) >= 8
    message = invoice_to_dft_p03(body, "R-1")
    assert message.count("\rFT1|") == len(body["items"])
    assert [item["code"] for item in parse_dft_p03(message)["items"]] == [
        item["code"] for item in body["items"]
    ]


def test_other_segments_are_ignored_and_category_labels_are_read() -> None:
    body = invoice()
    message = invoice_to_dft_p03(body, "O-1")
    message = message.replace("\rFT1|1|", "\rDG1|1||J06.9^URTI\rNTE|1||note\rFT1|1|", 1)
    first = body["items"][0]["category"]
    message = set_field(message, "FT1", 8, CATEGORIES[first])
    assert parse_dft_p03(message) == body


def test_name_components_join_like_names_are_written() -> None:
    message = invoice_to_dft_p03(invoice(), "N-1")
    assert parse_dft_p03(set_field(message, "PID", 5, "符^海琼"))["payer"]["name"] == "符海琼"
    assert parse_dft_p03(set_field(message, "PID", 5, "Smith^John"))["payer"]["name"] == (
        "Smith John"
    )


def test_masked_id_falls_back_to_pid_19() -> None:
    body = invoice()
    message = invoice_to_dft_p03(body, "M-1")
    message = set_field(message, "PID", 3, f"{body['patientRef']}^^^^PI")
    error = error_of(message)
    assert (error.segment, error.field, error.code) == ("PID", 3, "101")
    assert parse_dft_p03(set_field(message, "PID", 19, body["payer"]["idMasked"])) == body


def test_total_and_currency_default_from_the_charge_lines() -> None:
    body = invoice()
    message = invoice_to_dft_p03(body, "T-1")
    zeb = next(s for s in segments(message) if s.startswith("ZEB|"))
    short = "|".join(zeb.split("|")[:12])
    read = parse_dft_p03(replace_segment(message, "ZEB", short))
    assert read == body  # demo totals are written with 2 places, as the sum is


def test_supersedes_rides_in_zeb_15() -> None:
    body = invoice(status="reversed")
    dft = read_dft_p03(invoice_to_dft_p03(body, "S-1", supersedes=1))
    assert (dft.body["status"], dft.supersedes) == ("reversed", 1)
    message = set_field(invoice_to_dft_p03(body, "S-2"), "ZEB", 15, "0")
    assert (error_of(message).segment, error_of(message).field) == ("ZEB", 15)


def test_times_without_offset_take_msh7_then_the_default() -> None:
    body = invoice()
    message = invoice_to_dft_p03(body, "Z-1")
    naive = set_field(
        message, "ZEB", 5, body["issuedAt"][:19].replace("-", "").replace(":", "").replace("T", "")
    )
    assert read_dft_p03(naive).body["issuedAt"] == body["issuedAt"]  # MSH-7 says +0800
    no_msh7 = set_field(naive, "MSH", 6, "")  # split list index 6 is MSH-7
    assert read_dft_p03(no_msh7, default_offset="+05:30").body["issuedAt"].endswith("+05:30")


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


def batch_file(messages: list[str], *, bts: str | None = None, fts: bool = True) -> str:
    lines = ["FHS|^~\\&|HIS|46010126", "BHS|^~\\&|HIS|46010126"]
    for message in messages:
        lines.extend(segments(message))
    lines.append(f"BTS|{len(messages) if bts is None else bts}")
    if fts:
        lines.append("FTS|1")
    return "\n".join(lines) + "\n"


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


def test_writer_refuses_what_hl7_cannot_carry() -> None:
    with pytest.raises(ValueError):
        invoice_to_dft_p03(invoice(), "X", "2.7")
    with pytest.raises(ValueError):
        invoice_to_dft_p03(invoice(issuedAt="2026-01-01T10:00:00.123456+08:00"), "X")
    utc = invoice(issuedAt="2026-01-01T02:00:00Z")
    assert parse_dft_p03(invoice_to_dft_p03(utc, "X"))["issuedAt"] == "2026-01-01T02:00:00+00:00"


def test_offsets_are_kept_exactly() -> None:
    zone = timezone(timedelta(hours=-3, minutes=-30))
    issued = datetime(2026, 3, 1, 23, 59, 59, tzinfo=zone).isoformat()
    body = invoice(issuedAt=issued)
    assert parse_dft_p03(invoice_to_dft_p03(body, "Q"))["issuedAt"] == "2026-03-01T23:59:59-03:30"


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


# ----------------------------------------------------------------- formatting, PID-3, MSH-9


def test_formatting_line_breaks_read_as_one_space() -> None:
    enc = Encoding()
    assert unescape("a\\.br\\b\\.sp\\c\\.ce\\d", enc) == "a b c d"
    body = invoice()
    message = invoice_to_dft_p03(body, "BR-1")
    name = body["items"][0]["name"]
    broken = message.replace(f"^{name}|", f"^{name}\\.br\\(2)|", 1)
    assert broken != message
    assert parse_dft_p03(broken)["items"][0]["name"] == f"{name} (2)"


def test_patient_ref_skips_the_national_id_repetition() -> None:
    body = invoice()
    message = invoice_to_dft_p03(body, "PR-1")
    national_first = f"{body['payer']['idMasked']}^^^^NNCHN~P-000999^^^H^PI"
    read = parse_dft_p03(set_field(message, "PID", 3, national_first))
    assert read["patientRef"] == "P-000999"
    assert read["payer"]["idMasked"] == body["payer"]["idMasked"]
    # every repetition a national id: the first one, as before
    only_national = f"{body['payer']['idMasked']}^^^^NNCHN"
    read = parse_dft_p03(set_field(message, "PID", 3, only_national))
    assert read["patientRef"] == body["payer"]["idMasked"]


@pytest.mark.parametrize("structure", ["ADT_A01", "DFT_P11"])
def test_a_wrong_message_structure_is_ar_naming_msh_9(structure: str) -> None:
    message = set_field(invoice_to_dft_p03(invoice(), "MS-1"), "MSH", 8, f"DFT^P03^{structure}")
    error = error_of(message)
    assert (error.ack_code, error.segment, error.field, error.component) == ("AR", "MSH", 9, 3)
    assert msa_of(ack(message, "AR", error))[1:3] == ["AR", "MS-1"]


def test_an_empty_message_structure_is_still_taken() -> None:
    body = invoice()
    message = set_field(invoice_to_dft_p03(body, "MS-2"), "MSH", 8, "DFT^P03")
    assert parse_dft_p03(message) == body


# ----------------------------------------------------------------- ACKs in the sender's terms


def msa_of(reply: str) -> list[str]:
    line = next(s for s in reply.split("\r") if s.startswith("MSA"))
    return line.split(line[3])


def custom_delimiters(message: str) -> str:
    """``message`` with field ``#``, component ``$``, repetition ``%``, escape ``!``."""
    table = str.maketrans({"|": "#", "^": "$", "~": "%", "\\": "!"})
    return message.translate(table)


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
