"""The CSV export profile: encodings, columns, bills over several rows, errors by line."""

import copy
from typing import Any

import pytest

from adapters.csv_export import COLUMNS, RowError, read_csv_export, write_csv_export
from adapters.errors import AdapterError
from hub.documents.demo_data import demo_invoices

HEADER = ",".join(COLUMNS) + ",admitted_on,discharged_on"

# Two bills whose rows interleave, as an export sorted by time may; Chinese category names
# and 住院 next to the keys; money and quantities as a spreadsheet writes them.
EXPORT = "\r\n".join(
    [
        HEADER,
        "46230126,0000000101,Xy12Z9,2026-11-20T10:15:00+08:00,澄迈县人民医院,P-000101,王海,"
        "460***********1234,outpatient,内科,MZ20261120001,250101015,血常规（五分类）,化验费,"
        "1,25,25.00,25.1,0,0,25.10,0,,",
        "46230126,0000000102,Ab34Cd,2026-11-21T16:40:00+08:00,澄迈县人民医院,P-000102,林秋兰,"
        "460***********567X,住院,骨科,ZY20261121002,110900001,普通病房床位费（三人间）,bed,"
        "3,30.00,90.00,66.07,0.00,0.00,28.31,0.00,2026-11-18,2026-11-21",
        "46230126,0000000101,Xy12Z9,2026-11-20T10:15:00+08:00,澄迈县人民医院,P-000101,王海,"
        "460***********1234,outpatient,内科,MZ20261120001,XJ01CAA040,阿莫西林胶囊 0.25g×24粒,"
        "western_medicine,2.00,12.6,25.20,25.1,0,0,25.10,0,,",
        "46230126,0000000102,Ab34Cd,2026-11-21T16:40:00+08:00,澄迈县人民医院,P-000102,林秋兰,"
        "460***********567X,住院,骨科,ZY20261121002,T00100,黄芪,中药饮片,"
        "12.50,0.35,4.38,66.07,0.00,0.00,28.31,0.00,2026-11-18,2026-11-21",
    ]
)

# Written out by hand from the rows above.
EXPECTED = [
    {
        "billCode": "46230126",
        "billNumber": "0000000101",
        "checkCode": "Xy12Z9",
        "issuedAt": "2026-11-20T10:15:00+08:00",
        "issuerName": "澄迈县人民医院",
        "payer": {"name": "王海", "idMasked": "460***********1234"},
        "patientRef": "P-000101",
        "visit": {
            "type": "outpatient",
            "department": "内科",
            "recordNumber": "MZ20261120001",
            "admittedOn": None,
            "dischargedOn": None,
        },
        "items": [
            {
                "category": "laboratory",
                "code": "250101015",
                "name": "血常规（五分类）",
                "quantity": "1",
                "unitPrice": "25.00",
                "amount": "25.00",
            },
            {
                "category": "western_medicine",
                "code": "XJ01CAA040",
                "name": "阿莫西林胶囊 0.25g×24粒",
                "quantity": "2",
                "unitPrice": "12.60",
                "amount": "25.20",
            },
        ],
        "totals": {
            "total": "50.20",
            "insuranceFund": "25.10",
            "otherPayments": "0.00",
            "personalAccount": "0.00",
            "personalCash": "25.10",
            "selfPay": "0.00",
        },
        "currency": "CNY",
        "status": "issued",
    },
    {
        "billCode": "46230126",
        "billNumber": "0000000102",
        "checkCode": "Ab34Cd",
        "issuedAt": "2026-11-21T16:40:00+08:00",
        "issuerName": "澄迈县人民医院",
        "payer": {"name": "林秋兰", "idMasked": "460***********567X"},
        "patientRef": "P-000102",
        "visit": {
            "type": "inpatient",
            "department": "骨科",
            "recordNumber": "ZY20261121002",
            "admittedOn": "2026-11-18",
            "dischargedOn": "2026-11-21",
        },
        "items": [
            {
                "category": "bed",
                "code": "110900001",
                "name": "普通病房床位费（三人间）",
                "quantity": "3",
                "unitPrice": "30.00",
                "amount": "90.00",
            },
            {
                "category": "herbal_pieces",
                "code": "T00100",
                "name": "黄芪",
                "quantity": "12.5",
                "unitPrice": "0.35",
                "amount": "4.38",
            },
        ],
        "totals": {
            "total": "94.38",
            "insuranceFund": "66.07",
            "otherPayments": "0.00",
            "personalAccount": "0.00",
            "personalCash": "28.31",
            "selfPay": "0.00",
        },
        "currency": "CNY",
        "status": "issued",
    },
]


def test_a_utf8_export_with_chinese_names_gives_the_invoices():
    result = read_csv_export(EXPORT.encode("utf-8"))
    assert result.errors == []
    assert result.encoding == "utf-8"
    assert result.invoices == EXPECTED


@pytest.mark.parametrize("encoding", ["gb18030", "gbk"])
def test_a_gb18030_twin_gives_the_same_invoices(encoding):
    data = EXPORT.encode(encoding)
    assert data != EXPORT.encode("utf-8")
    result = read_csv_export(data)
    assert result.errors == []
    assert result.encoding == "gb18030"
    assert result.invoices == read_csv_export(EXPORT.encode("utf-8")).invoices == EXPECTED


@pytest.mark.parametrize(
    "data",
    [
        b"\xef\xbb\xbf" + EXPORT.encode("utf-8"),
        "\ufeff".encode("gb18030") + EXPORT.encode("gb18030"),
        EXPORT.replace("\r\n", "\n").encode("utf-8") + b"\n",
    ],
    ids=["utf-8 BOM", "gb18030 BOM", "LF"],
)
def test_byte_order_marks_and_line_ends_do_not_matter(data):
    result = read_csv_export(data)
    assert result.errors == []
    assert result.invoices == EXPECTED


def test_an_explicit_encoding_is_obeyed():
    result = read_csv_export(EXPORT.encode("gb18030"), encoding="utf-8")
    assert result.invoices == []
    assert [error.line for error in result.errors] == [2, 3, 4, 5]
    assert read_csv_export(EXPORT.encode("gb18030"), encoding="GBK").invoices == EXPECTED
    with pytest.raises(AdapterError):
        read_csv_export(b"", encoding="no-such-codec")


# --- bad rows ----------------------------------------------------------------------------

# The first row of EXPORT as a bill of its own: 25.00, paid half by the fund.
GOOD = dict(zip(HEADER.split(","), EXPORT.split("\r\n")[1].split(","), strict=True))
GOOD.update(insurance_fund="12.50", personal_cash="12.50")
A = {"insurance_fund": "25.00", "personal_cash": "25.00"}  # bill A has two rows of 25.00


def row(**changes: str) -> str:
    return ",".join({**GOOD, **changes}.values())


def bad_export() -> bytes:
    lines = [
        HEADER,
        row(**A),  # 2: bill A, good
        row(bill_number="0000000200", quantity="2", unit_price="12.60"),  # 3: B, 25.20 != 25.00
        row(**A, item_code="250102001", item_name="尿常规"),  # 4: A again, good
        row(bill_number="0000000200", quantity="abc"),  # 5: B again, bad quantity
        row(bill_code="4623012"),  # 6: no bill to belong to
        row(bill_number="0000000300")[: -len(",,")],  # 7: C, two fields short
        row(bill_number="0000000300"),  # 8: C, good but its bill is rejected
        row(bill_number="0000000400"),  # 9: D, good
        row(bill_number="0000000400", check_code="Zz99Zz"),  # 10: D, differs from line 9
        row(bill_number="0000000500", insurance_fund="13.00"),  # 11: E, payments > total
        row(bill_number="0000000600", check_code="bad!"),  # 12: F, bad check code
        "",  # 13: blank lines are skipped
        row(bill_number="0000000700"),  # 14: G, good
    ]
    return "\n".join(lines).encode("gb18030")


def test_every_bad_line_is_listed_and_good_bills_go_through():
    result = read_csv_export(bad_export())
    assert [(error.line, error.column) for error in result.errors] == [
        (3, "amount"),
        (5, "quantity"),
        (6, "bill_code"),
        (7, None),
        (10, "check_code"),
        (11, None),
        (12, "check_code"),
    ]
    assert [(body["billNumber"], len(body["items"])) for body in result.invoices] == [
        ("0000000101", 2),
        ("0000000700", 1),
    ]
    by_line = {error.line: error for error in result.errors}
    assert "quantity x unitPrice" in by_line[3].problem
    assert "differs from line 9" in by_line[10].problem
    assert "must equal total" in by_line[11].problem
    assert "22 fields where the header has 24" in by_line[7].problem
    assert str(by_line[3]).startswith("line 3, column amount: ")


def test_a_record_spanning_lines_keeps_the_numbering_of_the_lines_after_it():
    spanning = row(item_name='"血常规\n（五分类）"')  # lines 2 and 3
    lines = [
        HEADER,
        spanning,
        row(bill_number="0000000200", amount="1.00"),
        row(bill_number="0000000300"),
    ]
    result = read_csv_export("\n".join(lines).encode("utf-8"))
    # A line break is a control character to the invoice rules; the record is reported at
    # its first line, and the lines after it keep the file's numbering.
    assert [(error.line, error.column) for error in result.errors] == [
        (2, "item_name"),
        (4, "amount"),
    ]
    assert [body["billNumber"] for body in result.invoices] == ["0000000300"]


def test_undecodable_bytes_fail_their_line_only():
    lines = [HEADER.encode(), row().encode("gb18030"), row(bill_number="0000000200").encode()]
    lines[2] = lines[2].replace("王海".encode(), b"\xff\xfe")
    result = read_csv_export(b"\n".join(lines))
    assert result.encoding == "gb18030"
    assert [(error.line, error.problem) for error in result.errors] == [
        (3, "bytes that are not valid gb18030")
    ]
    assert [body["billNumber"] for body in result.invoices] == ["0000000101"]
    # A mostly UTF-8 file stays UTF-8 despite one broken line.
    utf8 = [HEADER.encode(), row().encode(), row(bill_number="0000000200").encode()]
    utf8.append(row(bill_number="0000000300").encode("gb18030"))
    result = read_csv_export(b"\n".join(utf8))
    assert result.encoding == "utf-8"
    assert [error.line for error in result.errors] == [4]
    assert len(result.invoices) == 2


def test_a_malformed_record_rejects_its_bill():
    lines = [
        HEADER,
        row(**A),
        row(**A, item_name='x"y"z' + "\r" + "w"),  # a CR in an unquoted field
        row(bill_number="0000000200"),
    ]
    result = read_csv_export("\n".join(lines).encode())
    assert [error.line for error in result.errors] == [3]
    assert result.errors[0].problem.startswith("malformed CSV")
    assert [body["billNumber"] for body in result.invoices] == ["0000000200"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", [RowError(1, None, "empty file: no header row")]),
        (
            HEADER.replace("self_pay,", "").encode() + b"\n" + row().encode(),
            [RowError(1, "self_pay", "missing column")],
        ),
        (
            (HEADER + ",amount").encode(),
            [RowError(1, "amount", "the column appears twice")],
        ),
        (
            "\ufeffbill_code".encode("utf-16"),
            [RowError(1, None, "UTF-16 text; export as UTF-8 or GB18030")],
        ),
    ],
)
def test_an_unusable_header_rejects_the_file(data, expected):
    result = read_csv_export(data)
    assert result.invoices == []
    assert result.errors == expected


def test_extra_columns_are_ignored_and_cells_stripped():
    header = HEADER + ",doctor"
    data = "\n".join([header, " " + row().replace(",1,25,", ", 1 , 25 ,") + ",李医生"])
    result = read_csv_export(data.encode())
    assert result.errors == []
    assert result.invoices[0]["items"][0]["quantity"] == "1"
    assert result.invoices[0]["items"][0]["unitPrice"] == "25.00"


def test_currency_and_status_columns():
    header = HEADER + ",currency,status"
    lines = [header, row() + ",CNY,reversed", row(bill_number="0000000200") + ",cny,issued"]
    result = read_csv_export("\n".join(lines).encode())
    assert result.invoices[0]["status"] == "reversed"
    assert [(error.line, error.column) for error in result.errors] == [(3, "currency")]


def test_the_supersedes_column_names_the_version_a_reversal_replaces():
    header = HEADER + ",status,supersedes"
    lines = [
        header,
        row(**A) + ",reversed,1",  # 2: bill A reverses its version 1
        row(**A, item_code="250102001") + ",reversed,1",  # 3: A again, the same bill columns
        row(bill_number="0000000200") + ",issued,",  # 4: B, a first version
        row(bill_number="0000000300") + ",reversed,0",  # 5: C, no version 0
        row(bill_number="0000000400") + ",reversed,2",  # 6: D
        row(bill_number="0000000400") + ",reversed,3",  # 7: D, differs from line 6
    ]
    result = read_csv_export("\n".join(lines).encode())
    assert [(e.line, e.column, e.problem) for e in result.errors] == [
        (5, "supersedes", "must be a version number, 1 or more"),
        (7, "supersedes", "differs from line 6, the bill's first row"),
    ]
    assert [body["billNumber"] for body in result.invoices] == ["0000000101", "0000000200"]
    assert result.supersedes == [1, None]
    # the header may leave the column out: every bill is then a first version
    plain = read_csv_export("\n".join([HEADER, row()]).encode())
    assert (plain.errors, plain.supersedes) == ([], [None])


def test_supersedes_survives_write_and_read():
    invoices = demo_invoices(3, seed=5)
    invoices[1] = {**copy.deepcopy(invoices[1]), "status": "reversed"}
    result = read_csv_export(write_csv_export(invoices, supersedes=[None, 1, 4]))
    assert (result.invoices, result.supersedes) == (invoices, [None, 1, 4])


# --- writing -----------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_demo_invoices_survive_write_and_read(encoding):
    invoices = demo_invoices(200, seed=3)
    invoices[5] = {**copy.deepcopy(invoices[5]), "status": "reversed"}
    result = read_csv_export(write_csv_export(invoices, encoding))
    assert result.errors == []
    assert result.invoices == invoices


def test_gb18030_and_utf8_exports_of_the_same_invoices_read_alike():
    invoices = demo_invoices(50, seed=4)
    gb = read_csv_export(write_csv_export(invoices, "gb18030"))
    utf8 = read_csv_export(write_csv_export(invoices, "utf-8"))
    assert (gb.encoding, utf8.encoding) == ("gb18030", "utf-8")
    assert gb.invoices == utf8.invoices == invoices


def test_writing_refuses_what_the_encoding_cannot_hold():
    body: dict[str, Any] = copy.deepcopy(EXPECTED[0])
    body["items"][0]["name"] = "血常规 🩸"
    with pytest.raises(AdapterError):
        write_csv_export([body], "gbk")
    assert read_csv_export(write_csv_export([body], "gb18030")).invoices == [body]


def test_excels_sep_line_is_skipped_and_lines_keep_their_numbers():
    result = read_csv_export(("sep=,\r\n" + EXPORT).encode("utf-8"))
    assert (result.invoices, result.errors) == (EXPECTED, [])
    broken = "sep=,\r\n" + EXPORT.replace("25.00,25.1", "25.01,25.1", 1)
    assert [error.line for error in read_csv_export(broken.encode("utf-8")).errors] == [3]


def test_a_sep_line_naming_another_separator_is_one_clear_error():
    result = read_csv_export(("sep=;\r\n" + EXPORT).encode("utf-8"))
    assert result.invoices == []
    assert [(e.line, e.problem) for e in result.errors] == [
        (1, "the file is separated by another character; export with commas")
    ]
