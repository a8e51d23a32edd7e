"""The medical invoice (type ``medical_invoice``): the canonical body and its rules.

Fields follow the national medical charge e-bill (财综〔2019〕29号); the shape is the one
in DESIGN.md, section "Medical invoice". Validation is strict: every field is required,
unknown fields are rejected at every level, and the body is returned untouched, so the
digest covers exactly what the hospital sent.

Decisions the design leaves open:

- All amounts are non-negative. A reversal (冲红) is a new version with
  ``status: "reversed"`` that carries the original positive amounts.
- Quantities are positive; money and quantities have at most 2 decimal places and no
  sign, exponent or leading zeros.
- ``visit.dischargedOn`` may not precede ``visit.admittedOn``.
- ``payer.idMasked`` must show at most ``MAX_VISIBLE_ID_CHARS`` characters.
- Error messages name the field and the problem, never a personal value; they may show
  amounts and category keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any

from hub.documents.canonical import is_date, is_timestamp
from hub.documents.errors import BadDocument, child_path, index_path

__all__ = [
    "CATEGORIES",
    "INVOICE_TYPE",
    "MAX_ITEMS",
    "MAX_MONEY_DIGITS",
    "MAX_TEXT_CHARS",
    "MAX_VISIBLE_ID_CHARS",
    "invoice_document_id",
    "validate_invoice",
]

INVOICE_TYPE = "medical_invoice"

CATEGORIES: dict[str, str] = {
    "consultation": "诊察费",
    "examination": "检查费",
    "laboratory": "化验费",
    "treatment": "治疗费",
    "surgery": "手术费",
    "materials": "卫生材料费",
    "western_medicine": "西药费",
    "herbal_pieces": "中药饮片",
    "patent_medicine": "中成药费",
    "general_treatment": "一般诊疗费",
    "registration": "挂号费",
    "bed": "床位费",
    "nursing": "护理费",
    "other": "其他",
}
_KEYS = ", ".join(CATEGORIES)

MAX_ITEMS = 1000
MAX_TEXT_CHARS = 200
# Integer digits of money and quantities: up to 999,999,999,999.99.
MAX_MONEY_DIGITS = 12
# A masked id shows at most this many characters (e.g. 6 + 4 of an 18-char resident id).
MAX_VISIBLE_ID_CHARS = 10
MAX_ID_MASKED_CHARS = 32

VISIT_TYPES = ("outpatient", "inpatient")
STATUSES = ("issued", "reversed")

_TOP = (
    "billCode",
    "billNumber",
    "checkCode",
    "issuedAt",
    "issuerName",
    "payer",
    "patientRef",
    "visit",
    "items",
    "totals",
    "currency",
    "status",
)
_PAYER = ("name", "idMasked")
_VISIT = ("type", "department", "recordNumber", "admittedOn", "dischargedOn")
_ITEM = ("category", "code", "name", "quantity", "unitPrice", "amount")
_TOTALS = ("total", "insuranceFund", "otherPayments", "personalAccount", "personalCash", "selfPay")
_FIELD_SETS: dict[tuple[str, ...], frozenset[str]] = {
    fields: frozenset(fields) for fields in (_TOP, _PAYER, _VISIT, _ITEM, _TOTALS)
}

_BILL_CODE = re.compile(r"[0-9]{8}")
_BILL_NUMBER = re.compile(r"[0-9]{10}")
_CHECK_CODE = re.compile(r"[0-9A-Za-z]{6}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_DECIMAL = re.compile(rf"(0|[1-9][0-9]{{0,{MAX_MONEY_DIGITS - 1}}})(\.[0-9]{{1,2}})?")
_SIGNED_DECIMAL = re.compile(r"-[0-9]+(\.[0-9]+)?")
_ID_MASKED = re.compile(rf"[0-9A-Za-z*]{{1,{MAX_ID_MASKED_CHARS}}}")
_CATEGORY_ECHO = re.compile(r"[a-z_]{1,32}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A str holds a surrogate only alone (a pair is one code point): such text is not Unicode.
_CONTROL_OR_SURROGATE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")

_CENT = Decimal("0.01")
# quantity x unitPrice has up to 2 x (12 + 2) digits; the default 28-digit context is too tight.
_EXACT = Context(prec=64)

_MONEY_FORMAT = f"a decimal string with at most 2 places and {MAX_MONEY_DIGITS} integer digits"


def validate_invoice(body: object) -> dict[str, Any]:
    """Return ``body`` unchanged if it is a valid medical invoice.

    Raises BadDocument naming the first bad field (fields in their DESIGN.md order,
    then the rules across fields).
    """
    top = _object(body, "body", _TOP)
    _pattern(top["billCode"], "body.billCode", _BILL_CODE, "must be 8 digits")
    _pattern(top["billNumber"], "body.billNumber", _BILL_NUMBER, "must be 10 digits")
    _pattern(top["checkCode"], "body.checkCode", _CHECK_CODE, "must be 6 characters of 0-9A-Za-z")
    if not is_timestamp(top["issuedAt"]):
        raise BadDocument(
            "body.issuedAt",
            "must be an ISO-8601 date-time with offset, e.g. 2026-11-20T10:15:00+08:00",
        )
    _text(top["issuerName"], "body.issuerName")
    _payer(top["payer"])
    _text(top["patientRef"], "body.patientRef")
    _visit(top["visit"])
    items_total = _items(top["items"])
    _totals(top["totals"], items_total)
    _pattern(top["currency"], "body.currency", _CURRENCY, "must be 3 uppercase letters (ISO 4217)")
    _choice(top["status"], "body.status", STATUSES)
    return top


def invoice_document_id(body: Mapping[str, Any]) -> str:
    """The document id of an invoice: ``<billCode>-<billNumber>``."""
    _pattern(body.get("billCode"), "body.billCode", _BILL_CODE, "must be 8 digits")
    _pattern(body.get("billNumber"), "body.billNumber", _BILL_NUMBER, "must be 10 digits")
    return f"{body['billCode']}-{body['billNumber']}"


def _object(value: object, path: str, fields: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadDocument(path, "must be an object")
    if value.keys() == _FIELD_SETS[fields]:
        return value  # the usual case, in one comparison; otherwise name the first fault
    for key in value:
        if not isinstance(key, str):
            raise BadDocument(path, "object keys must be strings")
        if key not in fields:
            raise BadDocument(child_path(path, key), "unknown field")
    for key in fields:
        if key not in value:
            raise BadDocument(child_path(path, key), "required field is missing")
    return value


def _text(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise BadDocument(path, f"must be a string, not {_json_type(value)}")
    if not value or value.isspace():
        raise BadDocument(path, "must not be empty")
    if len(value) > MAX_TEXT_CHARS:
        raise BadDocument(path, f"longer than {MAX_TEXT_CHARS} characters")
    # Printable text has neither control characters nor lone surrogates: one C call
    # clears the usual case; the rest (a U+3000 space, say) is judged by the pattern.
    if value.isprintable():
        return value
    if _CONTROL_OR_SURROGATE.search(value):
        if _CONTROL.search(value):
            raise BadDocument(path, "must not contain control characters")
        raise BadDocument(path, "is not valid Unicode (lone surrogate)")
    return value


def _pattern(value: object, path: str, pattern: re.Pattern[str], problem: str) -> str:
    if not isinstance(value, str):
        raise BadDocument(path, f"must be a string, not {_json_type(value)}")
    if not pattern.fullmatch(value):
        raise BadDocument(path, problem)
    return value


def _choice(value: object, path: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise BadDocument(path, f"must be one of {', '.join(choices)}")
    return value


def _payer(value: object) -> None:
    payer = _object(value, "body.payer", _PAYER)
    _text(payer["name"], "body.payer.name")
    masked = _pattern(
        payer["idMasked"],
        "body.payer.idMasked",
        _ID_MASKED,
        f"must be an id of at most {MAX_ID_MASKED_CHARS} characters of 0-9A-Za-z and '*'",
    )
    if "*" not in masked:
        raise BadDocument("body.payer.idMasked", "must be masked with '*'; a full id is refused")
    if len(masked) - masked.count("*") > MAX_VISIBLE_ID_CHARS:
        raise BadDocument(
            "body.payer.idMasked", f"shows more than {MAX_VISIBLE_ID_CHARS} unmasked characters"
        )


def _visit(value: object) -> None:
    visit = _object(value, "body.visit", _VISIT)
    _choice(visit["type"], "body.visit.type", VISIT_TYPES)
    _text(visit["department"], "body.visit.department")
    _text(visit["recordNumber"], "body.visit.recordNumber")
    admitted = _optional_date(visit["admittedOn"], "body.visit.admittedOn")
    discharged = _optional_date(visit["dischargedOn"], "body.visit.dischargedOn")
    # ISO dates compare correctly as strings.
    if admitted is not None and discharged is not None and discharged < admitted:
        raise BadDocument("body.visit.dischargedOn", "must not be before admittedOn")


def _optional_date(value: object, path: str) -> str | None:
    if value is None:
        return None
    if not is_date(value):
        raise BadDocument(path, "must be null or a date YYYY-MM-DD")
    assert isinstance(value, str)
    return value


def _items(value: object) -> Decimal:
    if not isinstance(value, list):
        raise BadDocument("body.items", "must be a list")
    if not value:
        raise BadDocument("body.items", "must have at least one item")
    if len(value) > MAX_ITEMS:
        raise BadDocument("body.items", f"more than {MAX_ITEMS} items")
    total = Decimal(0)
    for i, raw in enumerate(value):
        try:
            total = _EXACT.add(total, _item(raw))
        except BadDocument as fault:
            # Item paths are written only for the faulty item, not for every good one.
            where = index_path("body.items", i) + fault.field.removeprefix(_ITEM_PATH)
            raise BadDocument(where, fault.problem) from None
    return total


_ITEM_PATH = "item"
# (quantity, unitPrice, amount) texts that passed, with the amount. A hospital's charges
# come from its price list in small quantities, so most lines repeat one already checked
# and cost a lookup instead of three decimal parses and a product. Only valid triples of
# strings are kept, so a hit says exactly what the checks would.
_VALID_CHARGES: dict[tuple[object, object, object], Decimal] = {}
# Each of the two memories is emptied when it reaches this many entries.
_MAX_REMEMBERED = 1 << 16
# (category, code, name) triples that passed: the labels come from the same price list.
_VALID_LABELS: set[tuple[object, object, object]] = set()


def _item(raw: object) -> Decimal:
    """The amount of one item; faults are named under ``item`` (the caller renames)."""
    item = _object(raw, _ITEM_PATH, _ITEM)
    label = (item["category"], item["code"], item["name"])
    try:
        known_label = label in _VALID_LABELS
    except TypeError:  # a list or an object where text belongs: refused below
        known_label = False
    if not known_label:
        category = item["category"]
        if not isinstance(category, str) or category not in CATEGORIES:
            shown = f" {category!r}" if _is_echoable_key(category) else ""
            raise BadDocument("item.category", f"unknown category{shown}; one of {_KEYS}")
        _text(item["code"], "item.code")
        _text(item["name"], "item.name")
        if len(_VALID_LABELS) >= _MAX_REMEMBERED:
            _VALID_LABELS.clear()
        _VALID_LABELS.add(label)
    charge = (item["quantity"], item["unitPrice"], item["amount"])
    try:
        known = _VALID_CHARGES.get(charge)
    except TypeError:  # a list or an object where money belongs: refused below
        known = None
    if known is not None:
        return known
    quantity = _money(item["quantity"], "item.quantity")
    if quantity == 0:
        raise BadDocument("item.quantity", "must be positive")
    unit_price = _money(item["unitPrice"], "item.unitPrice")
    amount = _money(item["amount"], "item.amount")
    expected = _EXACT.multiply(quantity, unit_price).quantize(_CENT, rounding=ROUND_HALF_UP)
    if amount != expected:
        raise BadDocument(
            "item.amount",
            f"{item['amount']} is not quantity x unitPrice "
            f"({item['quantity']} x {item['unitPrice']} = {expected}, rounded half-up)",
        )
    if len(_VALID_CHARGES) >= _MAX_REMEMBERED:
        _VALID_CHARGES.clear()
    _VALID_CHARGES[charge] = amount
    return amount


_TOTALS_PATHS = tuple((key, f"body.totals.{key}") for key in _TOTALS)


def _totals(value: object, items_total: Decimal) -> None:
    raw = _object(value, "body.totals", _TOTALS)
    total, fund, other, account, cash, self_pay = [
        _money(raw[key], path) for key, path in _TOTALS_PATHS
    ]
    if total != items_total:
        raise BadDocument(
            "body.totals.total", f"{raw['total']} is not the sum of item amounts ({items_total})"
        )
    add = _EXACT.add
    personal = add(account, cash)
    paid = add(add(fund, other), personal)
    if paid != total:
        raise BadDocument(
            "body.totals",
            f"insuranceFund + otherPayments + personalAccount + personalCash ({paid}) "
            f"must equal total ({raw['total']})",
        )
    if self_pay > personal:
        raise BadDocument(
            "body.totals.selfPay",
            f"{raw['selfPay']} exceeds personalAccount + personalCash ({personal})",
        )


def _money(value: object, path: str) -> Decimal:
    if not isinstance(value, str):
        raise BadDocument(path, f"must be {_MONEY_FORMAT}, not {_json_type(value)}")
    if not _DECIMAL.fullmatch(value):
        if _SIGNED_DECIMAL.fullmatch(value):
            raise BadDocument(
                path,
                "must not be negative (a reversal carries the original amounts "
                "with status 'reversed')",
            )
        raise BadDocument(path, f"must be {_MONEY_FORMAT}, e.g. '25.00'")
    return Decimal(value)


def _is_echoable_key(value: object) -> bool:
    # Only something shaped like a category key is echoed; anything else may be personal.
    return isinstance(value, str) and bool(_CATEGORY_ECHO.fullmatch(value))


def _json_type(value: object) -> str:
    names: dict[type, str] = {
        bool: "boolean",
        int: "integer",
        float: "float",
        str: "string",
        list: "list",
        dict: "object",
    }
    return "null" if value is None else names.get(type(value), type(value).__name__)
