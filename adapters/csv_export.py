"""Medical invoices from a HIS's CSV export (DESIGN.md, "CSV export profile").

Pure: bytes in, invoices and row errors out. One row per line item; the bill columns
repeat on each of its rows and rows are grouped by ``(bill_code, bill_number)``, in the
order bills first appear (a bill's rows need not be adjacent). A bill with any bad row
is rejected whole, with every bad line listed; the other bills go through. Line numbers
are the file's physical lines, the header being line 1; a record whose quoted field
spans lines is reported at its first line.

Decisions the profile leaves open (see ``adapters/README.md``, section "CSV"):

- Encoding: a UTF-8 or GB18030 byte-order mark decides; otherwise UTF-8 if most lines
  that are not ASCII decode as UTF-8, else GB18030 (a superset of GBK and GB2312). A
  line that does not decode is a bad row, not a reason to guess the other encoding.
- Cells are stripped of surrounding whitespace; columns beyond the profile are ignored.
  Optional columns ``admitted_on``, ``discharged_on`` (empty = null), ``currency``
  (default CNY), ``status`` (default issued) and ``supersedes`` (the version a
  correction or reversal replaces; empty = none) carry what the profile lacks.
- ``total`` is the sum of the item amounts. Money is written with exactly 2 decimals
  and quantities without trailing zeros (``25`` -> ``25.00``, ``1.50`` -> ``1.5``), as
  the FHIR and HL7 adapters do, so one bill gives one body whatever the channel.
- ``category`` may be the key (``laboratory``) or its Chinese name (``化验费``);
  ``visit_type`` may be ``outpatient``/``inpatient`` or ``门诊``/``住院``.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from adapters.errors import AdapterError
from adapters.formats import category_key, money_text, quantity_text, version_number
from hub.documents.errors import BadDocument
from hub.documents.invoice import validate_invoice

__all__ = [
    "BILL_COLUMNS",
    "COLUMNS",
    "ITEM_COLUMNS",
    "OPTIONAL_COLUMNS",
    "CsvResult",
    "RowError",
    "read_csv_export",
    "write_csv_export",
]

COLUMNS = (
    "bill_code",
    "bill_number",
    "check_code",
    "issued_at",
    "issuer_name",
    "patient_ref",
    "payer_name",
    "payer_id_masked",
    "visit_type",
    "department",
    "record_number",
    "item_code",
    "item_name",
    "category",
    "quantity",
    "unit_price",
    "amount",
    "insurance_fund",
    "other_payments",
    "personal_account",
    "personal_cash",
    "self_pay",
)
OPTIONAL_COLUMNS = ("admitted_on", "discharged_on", "currency", "status", "supersedes")
ITEM_COLUMNS = ("item_code", "item_name", "category", "quantity", "unit_price", "amount")
BILL_COLUMNS = tuple(column for column in COLUMNS + OPTIONAL_COLUMNS if column not in ITEM_COLUMNS)

# invoice field -> column, for placing the invoice rules' findings
_FIELD_COLUMNS = {
    "body.billCode": "bill_code",
    "body.billNumber": "bill_number",
    "body.checkCode": "check_code",
    "body.issuedAt": "issued_at",
    "body.issuerName": "issuer_name",
    "body.payer.name": "payer_name",
    "body.payer.idMasked": "payer_id_masked",
    "body.patientRef": "patient_ref",
    "body.visit.type": "visit_type",
    "body.visit.department": "department",
    "body.visit.recordNumber": "record_number",
    "body.visit.admittedOn": "admitted_on",
    "body.visit.dischargedOn": "discharged_on",
    "body.totals.insuranceFund": "insurance_fund",
    "body.totals.otherPayments": "other_payments",
    "body.totals.personalAccount": "personal_account",
    "body.totals.personalCash": "personal_cash",
    "body.totals.selfPay": "self_pay",
    "body.currency": "currency",
    "body.status": "status",
}
_ITEM_FIELD_COLUMNS = {
    "code": "item_code",
    "name": "item_name",
    "category": "category",
    "quantity": "quantity",
    "unitPrice": "unit_price",
    "amount": "amount",
}
_ITEM_FIELD = re.compile(r"body\.items\[(\d+)\](?:\.(\w+))?")
_BILL_CODE = re.compile(r"[0-9]{8}")
_BILL_NUMBER = re.compile(r"[0-9]{10}")
_VISIT_TYPES = {"门诊": "outpatient", "住院": "inpatient"}
_GB18030_BOM = codecs.BOM_UTF8.decode("utf-8").encode("gb18030")
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)

# Stand-ins that pass every rule, so a bill's header and each of its items can be
# checked apart and every bad line found, not only the first.
_SAMPLE_ITEM = {
    "category": "other",
    "code": "0",
    "name": "-",
    "quantity": "1",
    "unitPrice": "0.00",
    "amount": "0.00",
}
_SAMPLE_BILL: dict[str, Any] = {
    "billCode": "00000000",
    "billNumber": "0000000000",
    "checkCode": "000000",
    "issuedAt": "2000-01-01T00:00:00+00:00",
    "issuerName": "-",
    "payer": {"name": "-", "idMasked": "*"},
    "patientRef": "-",
    "visit": {
        "type": "outpatient",
        "department": "-",
        "recordNumber": "-",
        "admittedOn": None,
        "dischargedOn": None,
    },
    "currency": "CNY",
    "status": "issued",
}


@dataclass(frozen=True, slots=True)
class RowError:
    """A bad row: its first physical line (header = 1), the column if one is to blame."""

    line: int
    column: str | None
    problem: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.problem}"


@dataclass(frozen=True, slots=True)
class CsvResult:
    """The valid invoices of an export, and every bad row (sorted by line).

    ``supersedes`` has one entry per invoice, in the same order: the version it
    replaces (column ``supersedes``), or None for a first version.
    """

    invoices: list[dict[str, Any]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    encoding: str = "utf-8"
    supersedes: list[int | None] = field(default_factory=list)


@dataclass(slots=True)
class _Row:
    line: int
    cells: dict[str, str]


@dataclass(slots=True)
class _Bill:
    rows: list[_Row] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def read_csv_export(data: bytes, encoding: str | None = None) -> CsvResult:
    """The invoices in a CSV export; ``encoding`` None detects UTF-8 or GB18030.

    Raises AdapterError only for an ``encoding`` Python does not know; every problem
    with the data is a RowError in the result.
    """
    name, lines, undecodable = _decode(data, encoding)
    if name is None:
        utf16 = RowError(1, None, "UTF-16 text; export as UTF-8 or GB18030")
        return CsvResult(errors=[utf16], encoding="utf-16")
    records = _records(lines, undecodable, name)
    header = next(records, None)
    separator = None if header is None else _separator_line(header[1])
    if header is not None and separator is not None:
        # Excel writes "sep=," first when asked to keep the separator; it is no header.
        if separator != ",":
            wrong = "the file is separated by another character; export with commas"
            return CsvResult(errors=[RowError(header[0], None, wrong)], encoding=name)
        header = next(records, None)
    if header is None:
        return CsvResult(errors=[RowError(1, None, "empty file: no header row")], encoding=name)
    header_line, header_cells, header_problem = header
    columns = [cell.strip() for cell in header_cells]
    header_errors = _header_errors(header_line, columns)
    if header_problem is not None or header_errors:
        unreadable = [RowError(header_line, None, header_problem)] if header_problem else []
        return CsvResult(errors=unreadable + header_errors, encoding=name)
    errors: list[RowError] = []
    bills: dict[tuple[str, str], _Bill] = {}
    for line, cells, problem in records:
        if not any(cell.strip() for cell in cells):
            continue
        row = _Row(line, _cells(columns, cells))
        if problem is None and len(cells) != len(columns):
            problem = f"{len(cells)} fields where the header has {len(columns)}"
        error = None if problem is None else RowError(line, None, problem)
        key = (row.cells.get("bill_code", ""), row.cells.get("bill_number", ""))
        if not (_BILL_CODE.fullmatch(key[0]) and _BILL_NUMBER.fullmatch(key[1])):
            # No bill to reject with it: the row stands alone.
            errors.append(error or _key_error(line, key))
            continue
        bill = bills.setdefault(key, _Bill())
        if error is not None:
            bill.errors.append(error)
        else:
            bill.rows.append(row)
    invoices = []
    supersedes = []
    for bill in bills.values():
        body = _bill(bill)
        version = _supersedes(bill)
        if body is not None and not bill.errors:
            invoices.append(body)
            supersedes.append(version)
        errors.extend(bill.errors)
    return CsvResult(
        invoices=invoices,
        errors=sorted(errors, key=_line),
        encoding=name,
        supersedes=supersedes,
    )


def write_csv_export(
    invoices: Iterable[dict[str, Any]],
    encoding: str = "utf-8",
    *,
    supersedes: Iterable[int | None] | None = None,
) -> bytes:
    """A CSV export of valid invoices in the profile's columns plus the optional ones.

    ``supersedes``: one version (or None) per invoice, for the ``supersedes`` column.
    Raises BadDocument for an invalid invoice and AdapterError when the text has no
    form in ``encoding`` (GBK lacks some rare characters; GB18030 has them all).
    """
    bodies = list(invoices)
    versions = list(supersedes) if supersedes is not None else [None] * len(bodies)
    if len(versions) != len(bodies):
        raise ValueError("supersedes needs one entry per invoice")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS + OPTIONAL_COLUMNS)
    for body, version in zip(bodies, versions, strict=True):
        validate_invoice(body)
        for item in body["items"]:
            writer.writerow([*_row(body, item), "" if version is None else str(version)])
    try:
        return out.getvalue().encode(encoding)
    except UnicodeEncodeError:
        raise AdapterError(f"the export has characters that {encoding} cannot encode") from None
    except LookupError:
        raise AdapterError(f"unknown encoding {encoding!r}") from None


# --- decoding ----------------------------------------------------------------------------


def _decode(data: bytes, encoding: str | None) -> tuple[str | None, list[str], set[int]]:
    """(encoding, physical lines with their endings, numbers of lines that did not decode).

    Lines are split on LF before decoding: in both UTF-8 and GB18030 the byte 0x0A only
    ever stands for LF, so a broken line cannot hide its neighbours.
    """
    if encoding is not None:
        try:
            name = codecs.lookup(encoding).name
        except LookupError:
            raise AdapterError(f"unknown encoding {encoding!r}") from None
        if name in ("utf-8", "utf-8-sig"):
            name, data = "utf-8", data.removeprefix(codecs.BOM_UTF8)
        elif name == "gb18030":
            data = data.removeprefix(_GB18030_BOM)
    elif data.startswith(codecs.BOM_UTF8):
        name, data = "utf-8", data[len(codecs.BOM_UTF8) :]
    elif data.startswith(_GB18030_BOM):
        name, data = "gb18030", data[len(_GB18030_BOM) :]
    elif data.startswith(_UTF16_BOMS):
        return None, [], set()
    else:
        name = _guess(data)
    lines: list[str] = []
    bad: set[int] = set()
    for number, raw in enumerate(_split_lines(data), start=1):
        try:
            lines.append(raw.decode(name))
        except UnicodeDecodeError:
            bad.add(number)
            lines.append(raw.decode(name, errors="replace"))
    return name, lines, bad


def _split_lines(data: bytes) -> list[bytes]:
    """Lines ending in LF, which keep it; unlike bytes.splitlines a lone CR does not end
    a line, as in every editor's numbering."""
    pieces = data.split(b"\n")
    lines = [piece + b"\n" for piece in pieces[:-1]]
    if pieces[-1]:
        lines.append(pieces[-1])
    return lines


def _guess(data: bytes) -> str:
    utf8 = other = 0
    for raw in data.split(b"\n"):
        if raw.isascii():
            continue
        try:
            raw.decode("utf-8")
            utf8 += 1
        except UnicodeDecodeError:
            other += 1
    # Chinese text in GB18030 is almost never valid UTF-8, so a majority is telling.
    return "utf-8" if utf8 >= other else "gb18030"


def _separator_line(cells: list[str]) -> str | None:
    """The separator an Excel ``sep=X`` line names, or None for any other line."""
    text = ",".join(cells).strip()
    if len(text) == 5 and text[:4].lower() == "sep=":
        return text[4]
    return None


def _records(
    lines: list[str], undecodable: set[int], encoding: str
) -> Iterator[tuple[int, list[str], str | None]]:
    """(first line, cells, what makes the record unusable or None) per CSV record.

    A record the csv module cannot read still yields its first line cut at the commas,
    so that the bill it belongs to can be rejected with it.
    """
    reader = csv.reader(lines, strict=False)
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, lines[start - 1].split(","), f"malformed CSV: {exc}"
            continue
        if any(number in undecodable for number in range(start, reader.line_num + 1)):
            yield start, cells, f"bytes that are not valid {encoding}"
        else:
            yield start, cells, None


# --- rows and bills ----------------------------------------------------------------------


def _key_error(line: int, key: tuple[str, str]) -> RowError:
    if not _BILL_CODE.fullmatch(key[0]):
        return RowError(line, "bill_code", "must be 8 digits")
    return RowError(line, "bill_number", "must be 10 digits")


def _header_errors(line: int, columns: list[str]) -> list[RowError]:
    errors = []
    seen: set[str] = set()
    for column in columns:
        if column in seen and column in COLUMNS + OPTIONAL_COLUMNS:
            errors.append(RowError(line, column, "the column appears twice"))
        seen.add(column)
    errors.extend(
        RowError(line, column, "missing column") for column in COLUMNS if column not in seen
    )
    return errors


def _cells(columns: list[str], cells: list[str]) -> dict[str, str]:
    return {column: cell.strip() for column, cell in zip(columns, cells, strict=False)}


def _bill(bill: _Bill) -> dict[str, Any] | None:
    """The valid invoice of a bill's rows, or None with the bill's errors recorded."""
    if not bill.rows:
        return None
    head = bill.rows[0]
    for row in bill.rows[1:]:
        for column in BILL_COLUMNS:
            if row.cells.get(column, "") != head.cells.get(column, ""):
                problem = f"differs from line {head.line}, the bill's first row"
                bill.errors.append(RowError(row.line, column, problem))
                break
    header = _bill_fields(head.cells)
    _check(bill, {**header, **_items_and_totals([_SAMPLE_ITEM])}, [head])
    for row in bill.rows:
        item = _item(row.cells)
        _check(bill, {**_SAMPLE_BILL, **_items_and_totals([item])}, [row])
    if bill.errors:
        return None
    items = [_item(row.cells) for row in bill.rows]
    body = {**header, "items": items, "totals": _totals(head.cells, items)}
    _check(bill, body, bill.rows)
    return None if bill.errors else body


def _supersedes(bill: _Bill) -> int | None:
    """The bill's ``supersedes`` cell as a version number; a bad one is a bill error."""
    if not bill.rows:
        return None
    head = bill.rows[0]
    text = head.cells.get("supersedes", "")
    if not text:
        return None
    version = version_number(text)
    if version is None:
        bill.errors.append(RowError(head.line, "supersedes", "must be a version number, 1 or more"))
    return version


def _check(bill: _Bill, body: dict[str, Any], rows: list[_Row]) -> None:
    try:
        validate_invoice(body)
    except BadDocument as error:
        line, column = _place(error.field, rows)
        bill.errors.append(RowError(line, column, error.problem))


def _place(field: str, rows: list[_Row]) -> tuple[int, str | None]:
    match = _ITEM_FIELD.fullmatch(field)
    if match is not None:
        index = int(match.group(1))
        row = rows[index] if index < len(rows) else rows[0]
        return row.line, _ITEM_FIELD_COLUMNS.get(match.group(2) or "")
    return rows[0].line, _FIELD_COLUMNS.get(field)


def _bill_fields(cells: dict[str, str]) -> dict[str, Any]:
    visit_type = cells["visit_type"]
    return {
        "billCode": cells["bill_code"],
        "billNumber": cells["bill_number"],
        "checkCode": cells["check_code"],
        "issuedAt": cells["issued_at"],
        "issuerName": cells["issuer_name"],
        "payer": {"name": cells["payer_name"], "idMasked": cells["payer_id_masked"]},
        "patientRef": cells["patient_ref"],
        "visit": {
            "type": _VISIT_TYPES.get(visit_type, visit_type),
            "department": cells["department"],
            "recordNumber": cells["record_number"],
            "admittedOn": cells.get("admitted_on") or None,
            "dischargedOn": cells.get("discharged_on") or None,
        },
        "currency": cells.get("currency") or "CNY",
        "status": cells.get("status") or "issued",
    }


def _item(cells: dict[str, str]) -> dict[str, str]:
    category = cells["category"]
    return {
        "category": category_key(category),
        "code": cells["item_code"],
        "name": cells["item_name"],
        "quantity": quantity_text(cells["quantity"]),
        "unitPrice": money_text(cells["unit_price"]),
        "amount": money_text(cells["amount"]),
    }


def _items_and_totals(items: list[dict[str, str]]) -> dict[str, Any]:
    amount = items[0]["amount"]
    totals = dict.fromkeys(("insuranceFund", "otherPayments", "personalAccount"), "0.00")
    totals.update(total=amount, personalCash=amount, selfPay="0.00")
    return {"items": items, "totals": totals}


def _totals(cells: dict[str, str], items: list[dict[str, str]]) -> dict[str, str]:
    total = sum((Decimal(item["amount"]) for item in items), Decimal(0))
    return {
        "total": money_text(f"{total:f}"),
        "insuranceFund": money_text(cells["insurance_fund"]),
        "otherPayments": money_text(cells["other_payments"]),
        "personalAccount": money_text(cells["personal_account"]),
        "personalCash": money_text(cells["personal_cash"]),
        "selfPay": money_text(cells["self_pay"]),
    }


def _row(body: dict[str, Any], item: dict[str, str]) -> list[str]:
    totals, payer, visit = body["totals"], body["payer"], body["visit"]
    return [
        body["billCode"],
        body["billNumber"],
        body["checkCode"],
        body["issuedAt"],
        body["issuerName"],
        body["patientRef"],
        payer["name"],
        payer["idMasked"],
        visit["type"],
        visit["department"],
        visit["recordNumber"],
        item["code"],
        item["name"],
        item["category"],
        item["quantity"],
        item["unitPrice"],
        item["amount"],
        totals["insuranceFund"],
        totals["otherPayments"],
        totals["personalAccount"],
        totals["personalCash"],
        totals["selfPay"],
        visit["admittedOn"] or "",
        visit["dischargedOn"] or "",
        body["currency"],
        body["status"],
    ]


def _line(error: RowError) -> int:
    return error.line
