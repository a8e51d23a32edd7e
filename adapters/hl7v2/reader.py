"""A DFT^P03 read into a valid invoice body, each field's source remembered for errors."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from adapters.formats import category_key, mask_id, money_text, quantity_text, version_number
from adapters.hl7v2.errors import (
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE_ERROR,
    TABLE_VALUE_NOT_FOUND,
    Hl7Error,
    Position,
)
from adapters.hl7v2.header import Header, check_header, header_of
from adapters.hl7v2.tokenizer import Message, Segment, tokenize_head, tokenize_rest
from hub.documents.errors import BadDocument
from hub.documents.invoice import validate_invoice

# Local time of Chinese hospitals, for timestamps that carry no offset anywhere.
DEFAULT_OFFSET = "+08:00"
NATIONAL_ID_TYPE = "NNCHN"
PATIENT_ID_TYPE = "PI"
VISIT_CLASS = {"O": "outpatient", "I": "inpatient"}
_DTM = re.compile(
    r"([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})?(\.[0-9]{1,4})?([+-][0-9]{4})?"
)
_DATE_PREFIX = re.compile(
    r"([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{0,6}(\.[0-9]{1,4})?)([+-][0-9]{4})?"
)
_OFFSET = re.compile(r"[+-][0-9]{2}:[0-9]{2}")
_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Dft:
    """A DFT^P03 read into a valid invoice body."""

    control_id: str
    sender: str
    version: str
    body: dict[str, Any]
    header: Header
    supersedes: int | None = None


def parse_dft_p03(message: str) -> dict[str, Any]:
    """The valid invoice body a DFT^P03 carries; raises Hl7Error naming the bad field."""
    return read_dft_p03(message).body


def read_dft_p03(message: str, *, default_offset: str = DEFAULT_OFFSET) -> Dft:
    """Read a DFT^P03 into an invoice, with its control id, sender and supersedes.

    Timestamps without an offset take MSH-7's, else ``default_offset``. The message is
    tokenized once; a refusal is an Hl7Error whose ``header`` is the message's MSH when
    that could be read, for the ACK to answer with. Raises Hl7Error.
    """
    if not _OFFSET.fullmatch(default_offset):
        raise ValueError("default_offset must look like +08:00")
    head, rest = tokenize_head(message)
    header = header_of(head)
    try:
        msg = tokenize_rest(head, rest)
        check_header(header)
        reader = _BodyReader(msg, _offset_of(header.timestamp) or default_offset)
        body = reader.read()
        try:
            validate_invoice(body)
        except BadDocument as error:
            raise reader.locate(error) from None
    except Hl7Error as error:
        error.header = header
        raise
    return Dft(
        control_id=header.control_id,
        sender=header.sender,
        version=header.version,
        body=body,
        supersedes=reader.supersedes,
        header=header,
    )


class _BodyReader:
    """Builds the body and remembers where each of its fields came from."""

    def __init__(self, msg: Message, offset: str) -> None:
        self.msg = msg
        self.offset = offset
        self.sources: dict[str, Position] = {}
        self.supersedes: int | None = None

    def locate(self, error: BadDocument) -> Hl7Error:
        path = error.field
        source = None
        while True:
            source = self.sources.get(path) or self._item_source(path)
            if source is not None or not path:
                break
            path = _parent_path(path)
        source = source or Position("MSH", None)
        if "required field is missing" in error.problem or "must not be empty" in error.problem:
            code = REQUIRED_FIELD_MISSING
        elif "unknown category" in error.problem or "must be one of" in error.problem:
            code = TABLE_VALUE_NOT_FOUND
        else:
            code = DATA_TYPE_ERROR
        return Hl7Error.at(source, f"{error.field}: {error.problem}", code=code)

    def _item_source(self, path: str) -> Position | None:
        match = _ITEM_FIELD_PATH.fullmatch(path)
        if match is None:
            return None
        ft1s = self.msg.all("FT1")
        index = int(match[1])
        if index >= len(ft1s):
            return None
        position, component = _ITEM_FIELDS[match[2]]
        return Position("FT1", position, ft1s[index].sequence, component)

    def _take(
        self,
        path: str,
        segment: Segment,
        position: int,
        repetition: int = 1,
        component: int = 1,
        subcomponent: int = 1,
        *,
        repeating: bool = False,
    ) -> str:
        self.sources[path] = Position(
            segment.name,
            position,
            segment.sequence if repeating else None,
            component if component > 1 else None,
        )
        return self.msg.value(segment, position, repetition, component, subcomponent)

    def read(self) -> dict[str, Any]:
        msg = self.msg
        pid = msg.one("PID", required=True)
        pv1 = msg.one("PV1", required=False)
        zeb = msg.one("ZEB", required=True)
        ft1s = msg.all("FT1")
        assert pid is not None and zeb is not None
        if not ft1s:
            raise Hl7Error(
                "FT1",
                None,
                "at least one FT1 (one per charge line) is required",
                code=SEGMENT_SEQUENCE_ERROR,
            )
        self.sources["body"] = Position("ZEB", None)
        self.sources["body.items"] = Position("FT1", None)
        items = [self._item(i, ft1) for i, ft1 in enumerate(ft1s)]
        currency = self._currency(zeb, ft1s)
        body: dict[str, Any] = {
            "billCode": self._take("body.billCode", zeb, 2),
            "billNumber": self._take("body.billNumber", zeb, 3),
            "checkCode": self._take("body.checkCode", zeb, 4),
            "issuedAt": self._issued_at(zeb),
            "issuerName": self._take("body.issuerName", zeb, 11),
            "payer": {
                "name": self._payer_name(pid),
                "idMasked": self._id_masked(pid),
            },
            "patientRef": self._patient_ref(pid),
            "visit": self._visit(pid, pv1, ft1s[0]),
            "items": items,
            "totals": self._totals(zeb, items),
            "currency": currency,
            "status": self._take("body.status", zeb, 14) or "issued",
        }
        self.supersedes = self._supersedes(zeb)
        return body

    def _issued_at(self, zeb: Segment) -> str:
        raw = self._take("body.issuedAt", zeb, 5)
        if not raw:
            raise Hl7Error("ZEB", 5, "issue time is missing", code=REQUIRED_FIELD_MISSING)
        iso = _dtm_to_iso(raw, self.offset)
        if iso is None:
            raise Hl7Error("ZEB", 5, "issue time must be YYYYMMDDHHMMSS[+ZZZZ]")
        return iso

    def _patient_ref(self, pid: Segment) -> str:
        """The first PID-3 repetition that is not the national id (CX.5 ``NNCHN``, which
        is payer.idMasked); the first repetition when every one is."""
        self.sources["body.patientRef"] = Position("PID", 3)
        for repetition in range(1, self.msg.repetitions(pid, 3) + 1):
            if self.msg.value(pid, 3, repetition, 5) != NATIONAL_ID_TYPE:
                return self.msg.value(pid, 3, repetition, 1)
        return self.msg.value(pid, 3)

    def _id_masked(self, pid: Segment) -> str:
        path = "body.payer.idMasked"
        for repetition in range(1, self.msg.repetitions(pid, 3) + 1):
            if self.msg.value(pid, 3, repetition, 5) == NATIONAL_ID_TYPE:
                self.sources[path] = Position("PID", 3)
                # A HIS sends the full number; it is masked here, in the hospital.
                return mask_id(self.msg.value(pid, 3, repetition, 1))
        if pid.raw(19):
            return mask_id(self._take(path, pid, 19))
        raise Hl7Error(
            "PID",
            3,
            f"no masked national id: add a PID-3 repetition with identifier type "
            f"{NATIONAL_ID_TYPE} (or fill PID-19)",
            code=REQUIRED_FIELD_MISSING,
        )

    def _payer_name(self, pid: Segment) -> str:
        path = "body.payer.name"
        family = self._take(path, pid, 5, component=1)
        given = self.msg.value(pid, 5, component=2)
        if family and given:
            # Chinese names join without a space (张 + 三); Latin ones with one.
            space = "" if not family[-1].isascii() or not given[0].isascii() else " "
            return family + space + given
        return family or given

    def _visit(self, pid: Segment, pv1: Segment | None, ft1: Segment) -> dict[str, Any]:
        if pv1 is None:
            department = self._take("body.visit.department", ft1, 13, repeating=True)
            record = self._take("body.visit.recordNumber", pid, 18)
            if not department or not record:
                raise Hl7Error(
                    "PV1",
                    None,
                    "segment is missing, and FT1-13 (department) and PID-18 (visit number) "
                    "do not stand in for it",
                    code=SEGMENT_SEQUENCE_ERROR,
                )
            return {
                "type": "outpatient",
                "department": department,
                "recordNumber": record,
                "admittedOn": None,
                "dischargedOn": None,
            }
        patient_class = self._take("body.visit.type", pv1, 2)
        if patient_class not in VISIT_CLASS:
            raise Hl7Error(
                "PV1",
                2,
                "patient class must be O (outpatient) or I (inpatient)",
                code=TABLE_VALUE_NOT_FOUND if patient_class else REQUIRED_FIELD_MISSING,
            )
        department = self._take("body.visit.department", pv1, 3)
        if not department and ft1.raw(13):
            department = self._take("body.visit.department", ft1, 13, repeating=True)
        record = self._take("body.visit.recordNumber", pv1, 19)
        if not record and pid.raw(18):
            record = self._take("body.visit.recordNumber", pid, 18)
        return {
            "type": VISIT_CLASS[patient_class],
            "department": department,
            "recordNumber": record,
            "admittedOn": self._date("body.visit.admittedOn", pv1, 44),
            "dischargedOn": self._date("body.visit.dischargedOn", pv1, 45),
        }

    def _date(self, path: str, segment: Segment, position: int) -> str | None:
        raw = self._take(path, segment, position)
        if not raw:
            return None
        match = _DATE_PREFIX.fullmatch(raw)
        if match is None:
            raise Hl7Error(segment.name, position, "must be a date YYYYMMDD[HHMM[SS]][+ZZZZ]")
        return f"{match[1]}-{match[2]}-{match[3]}"

    def _item(self, index: int, ft1: Segment) -> dict[str, str]:
        path = f"body.items[{index}]"
        self.sources[path] = Position("FT1", None, ft1.sequence)
        kind = self.msg.value(ft1, 6)
        if kind != "CG":
            raise Hl7Error(
                "FT1",
                6,
                "transaction type must be CG (charge)",
                sequence=ft1.sequence,
                code=TABLE_VALUE_NOT_FOUND if kind else REQUIRED_FIELD_MISSING,
            )
        # Where each item field came from is worked out only for a refused message
        # (``locate``, from _ITEM_FIELDS): six paths a line would cost more than the read.
        value = self.msg.value
        category = value(ft1, 8)
        return {
            "category": category_key(category),
            "code": value(ft1, 7, component=1),
            "name": value(ft1, 7, component=2),
            "quantity": quantity_text(value(ft1, 10)),
            "unitPrice": money_text(value(ft1, 12)),
            "amount": money_text(value(ft1, 11)),
        }

    def _currency(self, zeb: Segment, ft1s: list[Segment]) -> str:
        currency = self._take("body.currency", zeb, 13)
        for ft1 in ft1s:
            for position in (11, 12):
                denomination = self.msg.value(ft1, position, subcomponent=2)
                if not denomination:
                    continue
                if not currency:
                    currency = denomination
                    self.sources["body.currency"] = Position("FT1", position, ft1.sequence)
                elif denomination != currency:
                    # Not quoted: an error text never repeats what a field holds.
                    raise Hl7Error(
                        "FT1",
                        position,
                        "the money denomination differs from the bill's currency "
                        "(ZEB-13 or the first FT1 that names one)",
                        sequence=ft1.sequence,
                    )
        return currency or "CNY"

    def _totals(self, zeb: Segment, items: list[dict[str, str]]) -> dict[str, str]:
        self.sources["body.totals"] = Position("ZEB", 6)
        total = self._take("body.totals.total", zeb, 12)
        if not total:
            # Without ZEB-12 the total is what the charge lines add up to.
            self.sources["body.totals.total"] = Position("FT1", 11)
            total = _sum_amounts(items)
        parts = {
            name: self._take(f"body.totals.{name}", zeb, position)
            for name, position in _PAYMENT_FIELDS.items()
        }
        return {"total": money_text(total)} | {
            name: money_text(value) for name, value in parts.items()
        }

    def _supersedes(self, zeb: Segment) -> int | None:
        raw = self.msg.value(zeb, 15)
        if not raw:
            return None
        version = version_number(raw)
        if version is None:
            raise Hl7Error("ZEB", 15, "supersedes must be a positive version number")
        return version


# Invoice item field -> (FT1 field, component when not the first) it is read from.
_ITEM_FIELDS: dict[str, tuple[int, int | None]] = {
    "category": (8, None),
    "code": (7, None),
    "name": (7, 2),
    "quantity": (10, None),
    "unitPrice": (12, None),
    "amount": (11, None),
}
_ITEM_FIELD_PATH = re.compile(rf"body\.items\[([0-9]+)\]\.({'|'.join(_ITEM_FIELDS)})")

_PAYMENT_FIELDS = {
    "insuranceFund": 6,
    "otherPayments": 7,
    "personalAccount": 8,
    "personalCash": 9,
    "selfPay": 10,
}


def _parent_path(path: str) -> str:
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else ""


def _sum_amounts(items: list[dict[str, str]]) -> str:
    try:
        total = sum((Decimal(item["amount"]) for item in items), Decimal(0))
    except InvalidOperation:
        # The bad amount is reported against its own FT1 by validation.
        return "0.00"
    return f"{total.quantize(_CENT):f}"


def _offset_of(dtm: str) -> str | None:
    match = _DTM.fullmatch(dtm)
    if match is None or match[8] is None:
        return None
    return f"{match[8][:3]}:{match[8][3:]}"


def _dtm_to_iso(dtm: str, default_offset: str) -> str | None:
    match = _DTM.fullmatch(dtm)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    zone = f"{offset[:3]}:{offset[3:]}" if offset else default_offset
    if fraction and not second:
        return None
    return f"{year}-{month}-{day}T{hour}:{minute}:{second or '00'}{fraction or ''}{zone}"


# --------------------------------------------------------------------------- escapes
