"""HL7 v2 mapping both ways: random and demo invoices, escapes, optional segments."""

import copy
from datetime import date, datetime, timedelta, timezone
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
    decode_message,
    escape,
    invoice_to_dft_p03,
    parse_dft_p03,
    read_dft_p03,
    unescape,
)
from hub.documents.demo_data import demo_invoices
from hub.documents.invoice import CATEGORIES, validate_invoice
from tests.adapters.hl7_messages import (
    PAYER,
    error_of,
    inpatient,
    invoice,
    msa_of,
    outpatient,
    replace_segment,
    segments,
    set_field,
)

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
