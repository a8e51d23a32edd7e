"""HL7 v2 DFT^P03 (v2.3 to v2.5.1) to the medical invoice and back; ACKs; batch files.

Pure: text in, text or dicts out. The profile is DESIGN.md's "HL7 v2 profile"; the
field table is in adapters/README.md ("HL7 v2"). Additions of ours, all optional on
input: PID-3 repetition with identifier type ``NNCHN`` (or PID-19) for ``payer.idMasked``;
PV1-44/45 for the admission and discharge dates; without PV1 the visit is outpatient,
its department comes from FT1-13 and its record number from PID-18; FT1-11.1.2 (money
denomination) for the currency; ``ZEB-12`` total, ``ZEB-13`` currency, ``ZEB-14``
status, ``ZEB-15`` the version a correction or reversal supersedes. ``patientRef`` is the
first PID-3 repetition that is not the national id (``NNCHN``).

The tokenizer and escape handling are our own rather than python-hl7's: its unescape
turns each ``\\Xhh\\`` byte into a Latin-1 character (so UTF-8 bytes come back as
mojibake), its escape writes non-ASCII as ``\\Xhhhh\\`` that it cannot read back, and
an error must name the segment occurrence and field, which its accessors do not track.

Money and quantities are read as every adapter writes them (``25`` -> ``25.00``,
``1.50`` -> ``1.5``), so one bill gives one body whatever the channel; the writer keeps
the body's text, so a body already in that form comes back unchanged.

Error texts name segments, fields and rules, never a personal value.
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from adapters.errors import AdapterError
from hub.documents.errors import BadDocument
from hub.documents.invoice import CATEGORIES, validate_invoice

__all__ = [
    "APPLICATION_ERROR",
    "DATA_TYPE_ERROR",
    "DEFAULT_OFFSET",
    "DUPLICATE_KEY",
    "REQUIRED_FIELD_MISSING",
    "SEGMENT_SEQUENCE_ERROR",
    "SUPPORTED_VERSIONS",
    "TABLE_VALUE_NOT_FOUND",
    "VALUE_TOO_LONG",
    "Batch",
    "Dft",
    "Encoding",
    "Header",
    "Hl7Error",
    "ack",
    "ack_batch",
    "batch_encoding",
    "decode_message",
    "decode_with_codec",
    "escape",
    "invoice_to_dft_p03",
    "is_batch",
    "parse_dft_p03",
    "read_dft_p03",
    "read_header",
    "split_batch",
    "unescape",
]

SUPPORTED_VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1")
# Local time of Chinese hospitals, for timestamps that carry no offset anywhere.
DEFAULT_OFFSET = "+08:00"

# HL7 table 0357, message error condition codes.
SEGMENT_SEQUENCE_ERROR = "100"
REQUIRED_FIELD_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE_NOT_FOUND = "103"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNSUPPORTED_EVENT_CODE = "201"
UNSUPPORTED_PROCESSING_ID = "202"
UNSUPPORTED_VERSION_ID = "203"
VALUE_TOO_LONG = "104"
DUPLICATE_KEY = "205"
APPLICATION_ERROR = "207"
_ERROR_TEXT = {
    SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    REQUIRED_FIELD_MISSING: "Required field missing",
    DATA_TYPE_ERROR: "Data type error",
    TABLE_VALUE_NOT_FOUND: "Table value not found",
    VALUE_TOO_LONG: "Value too long",
    UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    UNSUPPORTED_EVENT_CODE: "Unsupported event code",
    UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    UNSUPPORTED_VERSION_ID: "Unsupported version id",
    DUPLICATE_KEY: "Duplicate key identifier",
    APPLICATION_ERROR: "Application internal error",
}

# MSH-18 (table 0211) to a Python codec; the empty value means the default, ASCII, which
# UTF-8 reads too.
_CHARSETS = {
    "": "utf-8",
    "ASCII": "utf-8",
    "UNICODE": "utf-8",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "8859/1": "latin-1",
    "GB 18030-2000": "gb18030",
    "GB18030": "gb18030",
    "GB 18030": "gb18030",
}
_HEADER_SEGMENTS = ("MSH", "FHS", "BHS")
_SEGMENT_NAME = re.compile(r"[A-Z][A-Z0-9]{2}")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_DTM = re.compile(
    r"([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})?(\.[0-9]{1,4})?([+-][0-9]{4})?"
)
_DATE_PREFIX = re.compile(
    r"([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{0,6}(\.[0-9]{1,4})?)([+-][0-9]{4})?"
)
_ISO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})"
)
_OFFSET = re.compile(r"[+-][0-9]{2}:[0-9]{2}")
_CENT = Decimal("0.01")
_CATEGORY_BY_LABEL = {label: key for key, label in CATEGORIES.items()}
_VISIT_CLASS = {"O": "outpatient", "I": "inpatient"}
_CLASS_OF_VISIT = {value: key for key, value in _VISIT_CLASS.items()}
_MESSAGE_STRUCTURE = "DFT_P03"
_NATIONAL_ID_TYPE = "NNCHN"
_PATIENT_ID_TYPE = "PI"
_MAX_CONTROL_ID = 199
# ERR-8 and MSA-3 carry the problem; cap them so one ACK stays small.
_MAX_TEXT = 400


class Hl7Error(AdapterError):
    """A message breaks the profile; ``segment``/``field`` say where (HL7 positions).

    ``sequence`` is the occurrence of the segment (FT1 number 3 is ``sequence=3``),
    ``code`` an HL7 table 0357 code, and ``ack_code`` the answer it earns: ``AR`` when
    the message is not one we take (type, event, version, processing id, unreadable
    header), ``AE`` when its content is wrong.
    """

    def __init__(
        self,
        segment: str,
        field: int | None,
        problem: str,
        *,
        sequence: int | None = None,
        component: int | None = None,
        code: str = DATA_TYPE_ERROR,
        reject: bool = False,
    ) -> None:
        self.segment = segment
        self.field = field
        self.problem = problem
        self.sequence = sequence
        self.component = component
        self.code = code
        self.ack_code = "AR" if reject else "AE"
        super().__init__(f"{self.location}: {problem}")

    @property
    def location(self) -> str:
        """``FT1[3]-11.1`` style: segment, occurrence, field, component."""
        where = self.segment if self.sequence is None else f"{self.segment}[{self.sequence}]"
        if self.field is not None:
            where += f"-{self.field}"
            if self.component is not None:
                where += f".{self.component}"
        return where


@dataclass(frozen=True, slots=True)
class Encoding:
    """The delimiters of one message (MSH-1, MSH-2) and the codec of ``\\X..\\`` bytes."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    codec: str = "utf-8"

    @property
    def characters(self) -> str:
        """MSH-2: component, repetition, escape, subcomponent."""
        return self.component + self.repetition + self.escape + self.subcomponent


@dataclass(frozen=True, slots=True)
class Header:
    """What the MSH of a message says about it. Raw fields stay escaped."""

    encoding: Encoding
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    timestamp: str
    message_code: str
    trigger_event: str
    structure: str
    control_id: str
    processing_id: str
    version: str

    @property
    def sender(self) -> str:
        """MSH-3|MSH-4 as sent: control ids are unique per sender, not across them."""
        return f"{self.sending_application}|{self.sending_facility}"


@dataclass(frozen=True, slots=True)
class Dft:
    """A DFT^P03 read into a valid invoice body."""

    control_id: str
    sender: str
    version: str
    body: dict[str, Any]
    supersedes: int | None = None
    header: Header | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """The messages of a batch file, and what is wrong with its envelope."""

    messages: list[str]
    problems: list[Hl7Error] = field(default_factory=list)


# --------------------------------------------------------------------------- reading


@dataclass(slots=True)
class _Segment:
    name: str
    # fields[i] is the raw text of <name>-i; fields[0] is the name.
    fields: list[str]
    sequence: int

    def raw(self, position: int) -> str:
        return self.fields[position] if position < len(self.fields) else ""


class _Message:
    def __init__(self, encoding: Encoding, segments: list[_Segment]) -> None:
        self.encoding = encoding
        self.segments = segments

    def all(self, name: str) -> list[_Segment]:
        return [segment for segment in self.segments if segment.name == name]

    def one(self, name: str, *, required: bool) -> _Segment | None:
        found = self.all(name)
        if len(found) > 1:
            raise Hl7Error(
                name,
                None,
                f"appears {len(found)} times; a DFT^P03 carries one",
                sequence=found[1].sequence,
                code=SEGMENT_SEQUENCE_ERROR,
            )
        if not found:
            if required:
                raise Hl7Error(
                    name, None, "required segment is missing", code=SEGMENT_SEQUENCE_ERROR
                )
            return None
        return found[0]

    def value(
        self,
        segment: _Segment,
        position: int,
        repetition: int = 1,
        component: int = 1,
        subcomponent: int = 1,
    ) -> str:
        """One leaf, unescaped; ``""`` (the HL7 null) and absent parts read as empty."""
        fields = segment.fields
        leaf = fields[position] if position < len(fields) else ""
        if position <= 2 and segment.name in _HEADER_SEGMENTS:
            return leaf
        enc = self.encoding
        # About ninety leaves a message: the splits are inline, and most leaves have
        # no separator and no escape, so they come back as they are.
        if enc.repetition in leaf or repetition != 1:
            leaf = _part(leaf, enc.repetition, repetition)
        if enc.component in leaf or component != 1:
            leaf = _part(leaf, enc.component, component)
        if enc.subcomponent in leaf or subcomponent != 1:
            leaf = _part(leaf, enc.subcomponent, subcomponent)
        if enc.escape not in leaf:
            return "" if leaf == '""' else leaf
        if leaf == '""':
            return ""
        try:
            return unescape(leaf, enc)
        except ValueError as error:
            raise Hl7Error(
                segment.name,
                position,
                str(error),
                sequence=segment.sequence,
                component=component if component > 1 else None,
            ) from None

    def repetitions(self, segment: _Segment, position: int) -> int:
        raw = segment.raw(position)
        return len(raw.split(self.encoding.repetition)) if raw else 0


def _part(text: str, separator: str, index: int) -> str:
    if separator not in text:  # most leaves: no split, no list
        return text if index == 1 else ""
    parts = text.split(separator)
    return parts[index - 1] if index <= len(parts) else ""


def _lines(text: str) -> list[str]:
    # Files use \n or \r\n; MLLP uses \r. Blank lines carry nothing.
    return [line for line in _LINE_BREAK.split(text) if line.strip()]


def _first_line(text: str) -> str:
    """``_lines(text)[0]`` (or ``""``) without splitting the rest of the message."""
    start = 0
    while True:
        match = _LINE_BREAK.search(text, start)
        line = text[start : match.start()] if match else text[start:]
        if line.strip() or match is None:
            return line if line.strip() else ""
        start = match.end()


def _encoding_of(line: str, name: str, codec: str = "utf-8") -> Encoding:
    if len(line) < 8 or not line.startswith(name):
        raise Hl7Error(name, 1, f"segment must start with {name} and its delimiters", reject=True)
    separator = line[3]
    characters = line[4:].split(separator, 1)[0]
    # v2.7 adds a fifth character, truncation; read it, use the first four.
    delimiters = separator + characters[:4]
    if (
        len(characters) not in (4, 5)
        or len(set(delimiters)) != 5
        or any(c.isalnum() or c.isspace() for c in delimiters)
    ):
        raise Hl7Error(
            name,
            2,
            "encoding characters must be four distinct symbols such as ^~\\&",
            reject=True,
        )
    return Encoding(
        field=separator,
        component=characters[0],
        repetition=characters[1],
        escape=characters[2],
        subcomponent=characters[3],
        codec=codec,
    )


def _split(line: str, encoding: Encoding, sequence: int) -> _Segment:
    name = line[:3]
    if not _SEGMENT_NAME.fullmatch(name) or (len(line) > 3 and line[3] != encoding.field):
        raise Hl7Error(
            name if _SEGMENT_NAME.fullmatch(name) else "?",
            None,
            "is not a segment: expected a 3-character segment id and a field separator",
            sequence=sequence,
            code=SEGMENT_SEQUENCE_ERROR,
        )
    fields = line.split(encoding.field)
    if name in _HEADER_SEGMENTS:
        # <name>-1 is the field separator itself, so the list shifts by one.
        fields.insert(1, encoding.field)
    return _Segment(name, fields, sequence)


def _parse(message: str, *, header_only: bool = False, check_charset: bool = True) -> _Message:
    lines = [_first_line(message)] if header_only else _lines(message)
    if not lines or not lines[0].startswith("MSH"):
        raise Hl7Error("MSH", None, "a message must begin with an MSH segment", reject=True)
    encoding = _encoding_of(lines[0], "MSH")
    counts: dict[str, int] = {}
    segments = []
    for line in lines:
        name = line[:3]
        counts[name] = counts.get(name, 0) + 1
        segments.append(_split(line, encoding, counts[name]))
    message_codec = _charset_codec(segments[0].raw(18))
    if message_codec is None and not check_charset:
        message_codec = encoding.codec
    if message_codec is None:
        raise Hl7Error(
            "MSH", 18, "unknown character set; use UNICODE UTF-8 or GB 18030-2000", reject=True
        )
    if message_codec != encoding.codec:
        encoding = Encoding(
            encoding.field,
            encoding.component,
            encoding.repetition,
            encoding.escape,
            encoding.subcomponent,
            message_codec,
        )
    return _Message(encoding, segments)


def _charset_codec(raw: str) -> str | None:
    # MSH-18 repeats (a second character set for code switching); the first one rules.
    return _CHARSETS.get(raw.split("~", 1)[0].strip().upper())


def decode_message(data: bytes) -> str:
    """The text of an HL7 message or batch in the character set its MSH-18 names.

    Raises Hl7Error (MSH-18) when the bytes are not in that character set.
    """
    return decode_with_codec(data)[0]


def decode_with_codec(data: bytes) -> tuple[str, str]:
    """``decode_message(data)`` and the codec it decoded with."""
    # Delimiters are ASCII in every character set we read, so a byte-wise view finds MSH-18.
    view = data.decode("latin-1")
    charset = ""
    # The MSH of a lone message is its first line; a batch's first MSH comes later.
    first = _first_line(view)
    for line in [first] if first.startswith("MSH") else _lines(view):
        if line.startswith("MSH") and len(line) > 3:
            fields = line.split(line[3])
            # fields[0] is MSH, fields[1] MSH-2, so MSH-n is fields[n - 1].
            charset = fields[17] if len(fields) > 17 else ""
            break
    codec = _charset_codec(charset) or "utf-8"
    try:
        return data.decode(codec), codec
    except UnicodeDecodeError:
        raise Hl7Error(
            "MSH",
            18,
            f"message bytes are not valid {codec}; set MSH-18 to the character set used",
        ) from None


def read_header(message: str, *, check_charset: bool = True) -> Header:
    """The MSH of ``message``. Raises Hl7Error (an AR) when it cannot be read.

    ``check_charset=False`` reads a header whose MSH-18 names a character set we do not
    know (as UTF-8), so that the AR refusing it can still name its control id.
    """
    return _header(_parse(message, header_only=True, check_charset=check_charset))


def _header(msg: _Message) -> Header:
    msh = msg.segments[0]

    def part(position: int, component: int = 1) -> str:
        return msg.value(msh, position, component=component)

    return Header(
        encoding=msg.encoding,
        sending_application=msh.raw(3),
        sending_facility=msh.raw(4),
        receiving_application=msh.raw(5),
        receiving_facility=msh.raw(6),
        timestamp=part(7),
        message_code=part(9, 1),
        trigger_event=part(9, 2),
        structure=part(9, 3),
        control_id=part(10),
        processing_id=part(11),
        version=part(12),
    )


def _check_header(header: Header) -> None:
    if header.message_code != "DFT":
        raise Hl7Error(
            "MSH",
            9,
            "only DFT^P03 messages are taken here",
            component=1,
            code=UNSUPPORTED_MESSAGE_TYPE,
            reject=True,
        )
    if header.trigger_event != "P03":
        raise Hl7Error(
            "MSH",
            9,
            "only the P03 event (post detail financial transaction) is taken",
            component=2,
            code=UNSUPPORTED_EVENT_CODE,
            reject=True,
        )
    if header.structure not in ("", _MESSAGE_STRUCTURE):
        # Another structure under DFT^P03 means segments we would misread.
        raise Hl7Error(
            "MSH",
            9,
            f"message structure must be {_MESSAGE_STRUCTURE} (or empty)",
            component=3,
            code=UNSUPPORTED_MESSAGE_TYPE,
            reject=True,
        )
    if header.version not in SUPPORTED_VERSIONS:
        raise Hl7Error(
            "MSH",
            12,
            f"version must be one of {', '.join(SUPPORTED_VERSIONS)}",
            code=UNSUPPORTED_VERSION_ID,
            reject=True,
        )
    if header.processing_id != "P":
        # A public ledger cannot take back a training or debugging message once anchored.
        raise Hl7Error(
            "MSH",
            11,
            "only production messages (processing id P) are anchored",
            code=UNSUPPORTED_PROCESSING_ID,
            reject=True,
        )
    if not header.control_id.strip():
        raise Hl7Error("MSH", 10, "message control id is missing", code=REQUIRED_FIELD_MISSING)
    if len(header.control_id) > _MAX_CONTROL_ID or any(ord(c) < 0x20 for c in header.control_id):
        raise Hl7Error("MSH", 10, f"message control id must be 1-{_MAX_CONTROL_ID} characters")


def parse_dft_p03(message: str) -> dict[str, Any]:
    """The valid invoice body a DFT^P03 carries; raises Hl7Error naming the bad field."""
    return read_dft_p03(message).body


def read_dft_p03(message: str, *, default_offset: str = DEFAULT_OFFSET) -> Dft:
    """Read a DFT^P03 into an invoice, with its control id, sender and supersedes.

    Timestamps without an offset take MSH-7's, else ``default_offset``. Raises Hl7Error.
    """
    if not _OFFSET.fullmatch(default_offset):
        raise ValueError("default_offset must look like +08:00")
    msg = _parse(message)
    header = _header(msg)
    _check_header(header)
    reader = _BodyReader(msg, _offset_of(header.timestamp) or default_offset)
    body = reader.read()
    try:
        validate_invoice(body)
    except BadDocument as error:
        raise reader.locate(error) from None
    return Dft(
        control_id=header.control_id,
        sender=header.sender,
        version=header.version,
        body=body,
        supersedes=reader.supersedes,
        header=header,
    )


class _Source(NamedTuple):
    # A tuple: one is made per field read, and only a refused message looks at them.
    segment: str
    field: int | None
    sequence: int | None = None
    component: int | None = None


class _BodyReader:
    """Builds the body and remembers where each of its fields came from."""

    def __init__(self, msg: _Message, offset: str) -> None:
        self.msg = msg
        self.offset = offset
        self.sources: dict[str, _Source] = {}
        self.supersedes: int | None = None

    def locate(self, error: BadDocument) -> Hl7Error:
        path = error.field
        source = None
        while True:
            source = self.sources.get(path) or self._item_source(path)
            if source is not None or not path:
                break
            path = _parent_path(path)
        source = source or _Source("MSH", None)
        if "required field is missing" in error.problem or "must not be empty" in error.problem:
            code = REQUIRED_FIELD_MISSING
        elif "unknown category" in error.problem or "must be one of" in error.problem:
            code = TABLE_VALUE_NOT_FOUND
        else:
            code = DATA_TYPE_ERROR
        return Hl7Error(
            source.segment,
            source.field,
            f"{error.field}: {error.problem}",
            sequence=source.sequence,
            component=source.component,
            code=code,
        )

    def _item_source(self, path: str) -> _Source | None:
        match = _ITEM_FIELD_PATH.fullmatch(path)
        if match is None:
            return None
        ft1s = self.msg.all("FT1")
        index = int(match[1])
        if index >= len(ft1s):
            return None
        position, component = _ITEM_FIELDS[match[2]]
        return _Source("FT1", position, ft1s[index].sequence, component)

    def _take(
        self,
        path: str,
        segment: _Segment,
        position: int,
        repetition: int = 1,
        component: int = 1,
        subcomponent: int = 1,
        *,
        repeating: bool = False,
    ) -> str:
        self.sources[path] = _Source(
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
        self.sources["body"] = _Source("ZEB", None)
        self.sources["body.items"] = _Source("FT1", None)
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

    def _issued_at(self, zeb: _Segment) -> str:
        raw = self._take("body.issuedAt", zeb, 5)
        if not raw:
            raise Hl7Error("ZEB", 5, "issue time is missing", code=REQUIRED_FIELD_MISSING)
        iso = _dtm_to_iso(raw, self.offset)
        if iso is None:
            raise Hl7Error("ZEB", 5, "issue time must be YYYYMMDDHHMMSS[+ZZZZ]")
        return iso

    def _patient_ref(self, pid: _Segment) -> str:
        """The first PID-3 repetition that is not the national id (CX.5 ``NNCHN``, which
        is payer.idMasked); the first repetition when every one is."""
        self.sources["body.patientRef"] = _Source("PID", 3)
        for repetition in range(1, self.msg.repetitions(pid, 3) + 1):
            if self.msg.value(pid, 3, repetition, 5) != _NATIONAL_ID_TYPE:
                return self.msg.value(pid, 3, repetition, 1)
        return self.msg.value(pid, 3)

    def _id_masked(self, pid: _Segment) -> str:
        path = "body.payer.idMasked"
        for repetition in range(1, self.msg.repetitions(pid, 3) + 1):
            if self.msg.value(pid, 3, repetition, 5) == _NATIONAL_ID_TYPE:
                self.sources[path] = _Source("PID", 3)
                return self.msg.value(pid, 3, repetition, 1)
        if pid.raw(19):
            return self._take(path, pid, 19)
        raise Hl7Error(
            "PID",
            3,
            f"no masked national id: add a PID-3 repetition with identifier type "
            f"{_NATIONAL_ID_TYPE} (or fill PID-19)",
            code=REQUIRED_FIELD_MISSING,
        )

    def _payer_name(self, pid: _Segment) -> str:
        path = "body.payer.name"
        family = self._take(path, pid, 5, component=1)
        given = self.msg.value(pid, 5, component=2)
        if family and given:
            # Chinese names join without a space (张 + 三); Latin ones with one.
            space = "" if not family[-1].isascii() or not given[0].isascii() else " "
            return family + space + given
        return family or given

    def _visit(self, pid: _Segment, pv1: _Segment | None, ft1: _Segment) -> dict[str, Any]:
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
        if patient_class not in _VISIT_CLASS:
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
            "type": _VISIT_CLASS[patient_class],
            "department": department,
            "recordNumber": record,
            "admittedOn": self._date("body.visit.admittedOn", pv1, 44),
            "dischargedOn": self._date("body.visit.dischargedOn", pv1, 45),
        }

    def _date(self, path: str, segment: _Segment, position: int) -> str | None:
        raw = self._take(path, segment, position)
        if not raw:
            return None
        match = _DATE_PREFIX.fullmatch(raw)
        if match is None:
            raise Hl7Error(segment.name, position, "must be a date YYYYMMDD[HHMM[SS]][+ZZZZ]")
        return f"{match[1]}-{match[2]}-{match[3]}"

    def _item(self, index: int, ft1: _Segment) -> dict[str, str]:
        path = f"body.items[{index}]"
        self.sources[path] = _Source("FT1", None, ft1.sequence)
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
            "category": _CATEGORY_BY_LABEL.get(category, category),
            "code": value(ft1, 7, component=1),
            "name": value(ft1, 7, component=2),
            "quantity": _number(value(ft1, 10), 0),
            "unitPrice": _number(value(ft1, 12), 2),
            "amount": _number(value(ft1, 11), 2),
        }

    def _currency(self, zeb: _Segment, ft1s: list[_Segment]) -> str:
        currency = self._take("body.currency", zeb, 13)
        for ft1 in ft1s:
            for position in (11, 12):
                denomination = self.msg.value(ft1, position, subcomponent=2)
                if not denomination:
                    continue
                if not currency:
                    currency = denomination
                    self.sources["body.currency"] = _Source("FT1", position, ft1.sequence)
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

    def _totals(self, zeb: _Segment, items: list[dict[str, str]]) -> dict[str, str]:
        self.sources["body.totals"] = _Source("ZEB", 6)
        total = self._take("body.totals.total", zeb, 12)
        if not total:
            # Without ZEB-12 the total is what the charge lines add up to.
            self.sources["body.totals.total"] = _Source("FT1", 11)
            total = _sum_amounts(items)
        parts = {
            name: self._take(f"body.totals.{name}", zeb, position)
            for name, position in _PAYMENT_FIELDS.items()
        }
        return {"total": _number(total, 2)} | {
            name: _number(value, 2) for name, value in parts.items()
        }

    def _supersedes(self, zeb: _Segment) -> int | None:
        raw = self.msg.value(zeb, 15)
        if not raw:
            return None
        if not raw.isascii() or not raw.isdigit() or int(raw) < 1 or len(raw) > 15:
            raise Hl7Error("ZEB", 15, "supersedes must be a positive version number")
        return int(raw)


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
_NM = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?")


def _number(text: str, places: int) -> str:
    """An HL7 NM in the form every adapter writes: money with exactly 2 decimals
    (``25`` -> ``25.00``), quantities without trailing zeros (``1.50`` -> ``1.5``).

    A leading ``+`` and leading zeros go, as NM allows them. Text that is no NM, or has
    more than 2 significant decimals, is returned as is for the invoice rules to refuse:
    nothing is rounded.
    """
    match = _NM.fullmatch(text)
    if match is None or not (match[2] or match[3]):
        return text
    whole = match[2].lstrip("0") or "0"
    fraction = (match[3] or "").rstrip("0")
    if len(fraction) > 2:
        return text
    sign = "-" if match[1] == "-" else ""
    fraction = fraction.ljust(places, "0")
    return f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}"


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


def unescape(text: str, encoding: Encoding = Encoding()) -> str:
    """Resolve HL7 escape sequences (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\Xhh..\\ and formatting).

    ``\\Xhh\\`` bytes are decoded with ``encoding.codec``, adjacent ones together so a
    multi-byte character may span several. Raises ValueError on a malformed sequence.
    """
    esc = encoding.escape
    if esc not in text:
        return text
    named = {
        "F": encoding.field,
        "S": encoding.component,
        "T": encoding.subcomponent,
        "R": encoding.repetition,
        "E": esc,
        # Line breaks and centring are layout; a body field is one line of text, and a
        # carriage return there would be refused as a control character.
        ".br": " ",
        ".sp": " ",
        ".ce": " ",
        "H": "",  # start/end of highlighting: presentation only
        "N": "",
        ".fi": "",
        ".nf": "",
    }
    out: list[str] = []
    pending = bytearray()
    i = 0
    while i < len(text):
        char = text[i]
        if char != esc:
            if pending:
                out.append(_decode_hex(pending, encoding.codec))
                pending.clear()
            out.append(char)
            i += 1
            continue
        end = text.find(esc, i + 1)
        if end < 0:
            raise ValueError("unterminated escape sequence")
        sequence = text[i + 1 : end]
        i = end + 1
        if sequence.startswith("X") and len(sequence) > 1:
            try:
                pending += bytes.fromhex(sequence[1:])
            except ValueError:
                raise ValueError("escape \\X..\\ must hold an even number of hex digits") from None
            continue
        if pending:
            out.append(_decode_hex(pending, encoding.codec))
            pending.clear()
        if sequence in named:
            out.append(named[sequence])
        elif sequence[:3] in (".sp", ".in", ".ti", ".sk") and sequence[3:].lstrip("+-").isdigit():
            # Formatting with a count (.sp2, .in+4) only lays text out.
            continue
        else:
            # Never quoted: a stray escape character in a name makes the "sequence" a
            # piece of that name.
            raise ValueError("unsupported escape sequence")
    if pending:
        out.append(_decode_hex(pending, encoding.codec))
    return "".join(out)


def _decode_hex(data: bytearray, codec: str) -> str:
    try:
        return bytes(data).decode(codec)
    except UnicodeDecodeError:
        raise ValueError(f"escape \\X..\\ bytes are not valid {codec}") from None


def escape(text: str, encoding: Encoding = Encoding()) -> str:
    """``text`` with the delimiters and control characters escaped; other text as is."""
    esc = encoding.escape
    if text == '""':
        # Written plainly this would be the HL7 null, which reads back as empty.
        return f"{esc}X2222{esc}"
    names = {
        esc: "E",
        encoding.field: "F",
        encoding.component: "S",
        encoding.subcomponent: "T",
        encoding.repetition: "R",
    }
    out = []
    for char in text:
        if char in names:
            out.append(f"{esc}{names[char]}{esc}")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"{esc}X{ord(char):02X}{esc}")
        else:
            out.append(char)
    return "".join(out)


# --------------------------------------------------------------------------- writing


def invoice_to_dft_p03(
    body: Mapping[str, Any],
    control_id: str,
    version: str = "2.5",
    *,
    supersedes: int | None = None,
    sending_application: str = "HIS",
) -> str:
    """A DFT^P03 carrying ``body`` (validated first; raises BadDocument).

    Reading it back with read_dft_p03 gives ``body`` unchanged, except that an
    ``issuedAt`` in ``Z`` comes back as ``+00:00`` (HL7 has one way to write UTC).
    Raises ValueError for a version we do not speak or a time HL7 cannot hold.
    """
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"version must be one of {', '.join(SUPPORTED_VERSIONS)}")
    if not control_id or len(control_id) > _MAX_CONTROL_ID:
        raise ValueError(f"control_id must be 1-{_MAX_CONTROL_ID} characters")
    validate_invoice(body)
    enc = Encoding()

    def e(text: str) -> str:
        return escape(text, enc)

    issued = _iso_to_dtm(body["issuedAt"])
    visit = body["visit"]
    payer = body["payer"]
    totals = body["totals"]
    currency = body["currency"]
    message_type = "DFT^P03" if version == "2.3" else "DFT^P03^DFT_P03"
    segments = [
        _segment(
            "MSH",
            enc,
            {
                3: e(sending_application),
                4: e(body["billCode"]),
                5: "LEDGERHUB",
                6: "HUB",
                7: issued,
                9: message_type,
                10: e(control_id),
                11: "P",
                12: version,
                17: "CHN",
                18: "UNICODE UTF-8",
            },
        ),
        _segment("EVN", enc, {1: "P03", 2: issued}),
        _segment(
            "PID",
            enc,
            {
                1: "1",
                3: f"{e(body['patientRef'])}^^^^{_PATIENT_ID_TYPE}"
                f"~{e(payer['idMasked'])}^^^^{_NATIONAL_ID_TYPE}",
                5: e(payer["name"]),
                18: e(visit["recordNumber"]),
            },
        ),
        _segment(
            "PV1",
            enc,
            {
                1: "1",
                2: _CLASS_OF_VISIT[visit["type"]],
                3: e(visit["department"]),
                19: e(visit["recordNumber"]),
                44: _date_to_dtm(visit["admittedOn"]),
                45: _date_to_dtm(visit["dischargedOn"]),
            },
        ),
    ]
    day = issued[:8]
    for number, item in enumerate(body["items"], start=1):
        segments.append(
            _segment(
                "FT1",
                enc,
                {
                    1: str(number),
                    4: day,
                    6: "CG",
                    7: f"{e(item['code'])}^{e(item['name'])}",
                    8: e(item["category"]),
                    9: CATEGORIES[item["category"]],
                    10: e(item["quantity"]),
                    11: f"{e(item['amount'])}&{e(currency)}",
                    12: f"{e(item['unitPrice'])}&{e(currency)}",
                    13: e(visit["department"]),
                },
            )
        )
    segments.append(
        _segment(
            "ZEB",
            enc,
            {
                1: "1",
                2: e(body["billCode"]),
                3: e(body["billNumber"]),
                4: e(body["checkCode"]),
                5: issued,
                6: e(totals["insuranceFund"]),
                7: e(totals["otherPayments"]),
                8: e(totals["personalAccount"]),
                9: e(totals["personalCash"]),
                10: e(totals["selfPay"]),
                11: e(body["issuerName"]),
                12: e(totals["total"]),
                13: e(currency),
                14: e(body["status"]),
                15: "" if supersedes is None else str(supersedes),
            },
        )
    )
    return "\r".join(segments) + "\r"


def _segment(name: str, enc: Encoding, fields: Mapping[int, str]) -> str:
    last = max(position for position, value in fields.items() if value)
    values = [fields.get(position, "") for position in range(1, last + 1)]
    if name in _HEADER_SEGMENTS:
        # <name>-1 is the separator itself and <name>-2 the encoding characters.
        return name + enc.field + enc.characters + enc.field + enc.field.join(values[2:])
    return name + enc.field + enc.field.join(values)


def _iso_to_dtm(value: str) -> str:
    match = _ISO.fullmatch(value)
    if match is None:
        raise ValueError("issuedAt must be an ISO-8601 date-time with offset")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if fraction and len(fraction) > 5:
        raise ValueError("HL7 times carry at most 4 fractional digits")
    offset = "+0000" if zone == "Z" else zone.replace(":", "")
    return f"{year}{month}{day}{hour}{minute}{second}{fraction or ''}{offset}"


def _date_to_dtm(value: str | None) -> str:
    return "" if value is None else value.replace("-", "")


# --------------------------------------------------------------------------- ACKs


def ack(
    message: str,
    code: str,
    error: Hl7Error | None = None,
    *,
    control_id: str | None = None,
    now: datetime | None = None,
    header: Header | None = None,
) -> str:
    """An original-mode ACK to ``message``: ``AA``, ``AE`` or ``AR``.

    ``error`` becomes an ERR segment (v2.5: ERR-2 location, ERR-3 code, ERR-4 severity,
    ERR-8 text; v2.3/2.4: ERR-1) and MSA-3. An unreadable ``message`` still gets an
    answer, with default delimiters and an empty MSA-2. ``header`` is ``message``'s MSH
    when the caller has already read it.
    """
    if code not in ("AA", "AE", "AR"):
        raise ValueError("code must be AA, AE or AR")
    if header is None:
        header = _readable_header(message)
    enc = header.encoding if header else Encoding(codec="utf-8")
    version = header.version if header and header.version in SUPPORTED_VERSIONS else "2.5"
    moment = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S%z")
    event = header.trigger_event if header else ""
    event = escape(event, enc)
    # In the message's own component separator: a sender with other delimiters reads
    # the ACK with them.
    parts = ["ACK", event] if version == "2.3" else ["ACK", event, "ACK"]
    message_type = enc.component.join(parts)
    msh = _segment(
        "MSH",
        enc,
        {
            3: header.receiving_application if header else "LEDGERHUB",
            4: header.receiving_facility if header else "HUB",
            5: header.sending_application if header else "",
            6: header.sending_facility if header else "",
            7: moment,
            9: message_type,
            10: escape(control_id or _ack_control_id(), enc),
            11: "P",
            12: version,
        },
    )
    original = escape(header.control_id, enc) if header else ""
    text = _clip(str(error)) if error else ""
    segments = [msh, _segment("MSA", enc, {1: code, 2: original, 3: escape(text, enc)})]
    if error is not None:
        segments.append(_err(error, enc, version))
    return "\r".join(segments) + "\r"


def _readable_header(message: str) -> Header | None:
    """As much of ``message``'s MSH as can be read, for answering it; None if none."""
    try:
        return read_header(message, check_charset=False)
    except Hl7Error:
        return None


_ACK_ID_PREFIX = secrets.token_hex(6)
_ack_ids = itertools.count(1)


def _ack_control_id() -> str:
    # Unique per ACK without a random draw (a getrandom call) for each: a random
    # per-process prefix and a counter, 20 characters as MSH-10 allows in v2.3.
    return f"{_ACK_ID_PREFIX}{next(_ack_ids):08x}"[:20]


def _err(error: Hl7Error, enc: Encoding, version: str) -> str:
    c, s = enc.component, enc.subcomponent
    sequence = str(error.sequence or 1)
    position = "" if error.field is None else str(error.field)
    component = "" if error.component is None else str(error.component)
    meaning = _ERROR_TEXT.get(error.code, "")
    if version in ("2.5", "2.5.1"):
        location = c.join((error.segment, sequence, position, "", component)).rstrip(c)
        return _segment(
            "ERR",
            enc,
            {
                2: location,
                3: c.join((error.code, meaning, "HL70357")),
                4: "E",
                8: escape(_clip(str(error)), enc),
            },
        )
    # v2.3/2.4: ERR-1 "error code and location", the code as subcomponents of its CE.
    code = s.join((error.code, meaning, "HL70357"))
    return _segment("ERR", enc, {1: c.join((error.segment, sequence, position, code))})


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


def ack_batch(
    acks: list[str], *, now: datetime | None = None, encoding: Encoding | None = None
) -> str:
    """The acknowledgements of a batch, as a batch: BHS, the ACKs, BTS with their count.

    ``encoding``: the delimiters of the batch answered (default ``|^~\\&``).
    """
    moment = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S%z")
    enc = encoding or Encoding()
    header = _segment("BHS", enc, {3: "LEDGERHUB", 4: "HUB", 7: moment})
    body = "".join(a if a.endswith("\r") else a + "\r" for a in acks)
    return f"{header}\r{body}BTS{enc.field}{len(acks)}\r"


def batch_encoding(text: str) -> Encoding:
    """The delimiters a batch file's header (FHS or BHS) declares; the default ones if
    they cannot be read."""
    line = _first_line(text)
    try:
        return _encoding_of(line, line[:3])
    except Hl7Error:
        return Encoding()


# --------------------------------------------------------------------------- batches


def is_batch(text: str) -> bool:
    """Whether ``text`` is a batch file (starts with FHS or BHS) rather than one message."""
    return _first_line(text)[:3] in ("FHS", "BHS")


def split_batch(text: str) -> Batch:
    """The messages of a batch file (FHS/BHS ... BTS/FTS), in order.

    Also takes a plain run of messages. Envelope faults (a missing BTS or FTS, counts in
    BTS-1/FTS-1 that do not match, segments outside any message) are listed in
    ``problems``; the messages found are returned all the same, each to stand or fall on
    its own.
    """
    problems: list[Hl7Error] = []
    messages: list[list[str]] = []
    batch_counts: list[int] = []  # messages per batch
    batches = 0
    in_file = in_batch = file_closed = False
    current: list[str] | None = None
    seen: dict[str, int] = {}

    def note(name: str, position: int | None, problem: str) -> None:
        problems.append(
            Hl7Error(name, position, problem, sequence=seen.get(name), code=SEGMENT_SEQUENCE_ERROR)
        )

    def count_of(line: str) -> str:
        if len(line) < 5:
            return ""
        count = line.split(line[3])[1].split("^")[0].strip()
        # Shown in the problem, so only a number is kept; anything else reads as "?".
        return count if count.isascii() and count.isdigit() else "?" if count else ""

    for line in _lines(text):
        name = line[:3]
        seen[name] = seen.get(name, 0) + 1
        if name == "FHS":
            if in_file or messages:
                note("FHS", None, "a file header must come first, once")
            in_file = True
        elif name == "BHS":
            if in_batch:
                note("BHS", None, "batch header inside an open batch (missing BTS)")
                batches += 1
            in_batch = True
            batch_counts.append(0)
            current = None
        elif name == "BTS":
            if not in_batch:
                note("BTS", None, "batch trailer without a batch header")
                continue
            expected = count_of(line)
            found = batch_counts[-1]
            if expected and expected != str(found):
                note("BTS", 1, f"batch says {expected} messages, holds {found}")
            in_batch = False
            batches += 1
            current = None
        elif name == "FTS":
            if not in_file:
                note("FTS", None, "file trailer without a file header")
                continue
            expected = count_of(line)
            if expected and expected != str(batches):
                note("FTS", 1, f"file says {expected} batches, holds {batches}")
            file_closed = True
            current = None
        elif name == "MSH":
            current = [line]
            messages.append(current)
            if in_batch:
                batch_counts[-1] += 1
        elif current is None:
            note(name if _SEGMENT_NAME.fullmatch(name) else "?", None, "segment outside a message")
        else:
            current.append(line)
    if in_batch:
        note("BTS", None, "batch trailer missing: the batch may be truncated")
    if in_file and not file_closed:
        note("FTS", None, "file trailer missing: the file may be truncated")
    return Batch(messages=["\r".join(lines) + "\r" for lines in messages], problems=problems)
