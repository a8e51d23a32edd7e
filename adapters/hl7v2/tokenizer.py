"""Text to segments and fields: line splitting, MSH delimiters, character sets, and the
leaf accessor that unescapes one component on demand."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, replace

from adapters.hl7v2.encoding import Encoding, unescape
from adapters.hl7v2.errors import SEGMENT_SEQUENCE_ERROR, Hl7Error

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
HEADER_SEGMENTS = ("MSH", "FHS", "BHS")
SEGMENT_NAME = re.compile(r"[A-Z][A-Z0-9]{2}")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(slots=True)
class Segment:
    """One segment: ``fields[i]`` is the raw text of <name>-i, ``fields[0]`` the name."""

    name: str
    # fields[i] is the raw text of <name>-i; fields[0] is the name.
    fields: list[str]
    sequence: int

    def raw(self, position: int) -> str:
        return self.fields[position] if position < len(self.fields) else ""


class Message:
    """A tokenized message: its delimiters and segments; leaves are read on demand.

    ``charset`` is MSH-18 as sent (its first repetition), ``charset_known`` whether we
    read that character set (``encoding.codec`` is then its codec).
    """

    def __init__(
        self,
        encoding: Encoding,
        segments: list[Segment],
        *,
        charset: str = "",
        charset_known: bool = True,
    ) -> None:
        self.encoding = encoding
        self.segments = segments
        self.charset = charset
        self.charset_known = charset_known

    def all(self, name: str) -> list[Segment]:
        return [segment for segment in self.segments if segment.name == name]

    def one(self, name: str, *, required: bool) -> Segment | None:
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
        segment: Segment,
        position: int,
        repetition: int = 1,
        component: int = 1,
        subcomponent: int = 1,
    ) -> str:
        """One leaf, unescaped; ``""`` (the HL7 null) and absent parts read as empty."""
        fields = segment.fields
        leaf = fields[position] if position < len(fields) else ""
        if position <= 2 and segment.name in HEADER_SEGMENTS:
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

    def repetitions(self, segment: Segment, position: int) -> int:
        raw = segment.raw(position)
        return len(raw.split(self.encoding.repetition)) if raw else 0


def _part(text: str, separator: str, index: int) -> str:
    if separator not in text:  # most leaves: no split, no list
        return text if index == 1 else ""
    parts = text.split(separator)
    return parts[index - 1] if index <= len(parts) else ""


def lines_of(text: str) -> list[str]:
    # Files use \n or \r\n; MLLP uses \r. Blank lines carry nothing.
    return [line for line in _LINE_BREAK.split(text) if line.strip()]


def first_line(text: str) -> str:
    """``lines_of(text)[0]`` (or ``""``) without splitting the rest of the message."""
    start = 0
    while True:
        match = _LINE_BREAK.search(text, start)
        line = text[start : match.start()] if match else text[start:]
        if line.strip() or match is None:
            return line if line.strip() else ""
        start = match.end()


def encoding_of(line: str, name: str, codec: str = "utf-8") -> Encoding:
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


def _split(line: str, encoding: Encoding, sequence: int) -> Segment:
    name = line[:3]
    if not SEGMENT_NAME.fullmatch(name) or (len(line) > 3 and line[3] != encoding.field):
        raise Hl7Error(
            name if SEGMENT_NAME.fullmatch(name) else "?",
            None,
            "is not a segment: expected a 3-character segment id and a field separator",
            sequence=sequence,
            code=SEGMENT_SEQUENCE_ERROR,
        )
    fields = line.split(encoding.field)
    if name in HEADER_SEGMENTS:
        # <name>-1 is the field separator itself, so the list shifts by one.
        fields.insert(1, encoding.field)
    return Segment(name, fields, sequence)


def tokenize_head(message: str) -> tuple[Message, list[str]]:
    """The MSH of ``message`` as a Message of one segment, and the message's other lines.

    The header is read first and on its own so that whatever is wrong further on, the
    answer can still name the message (MSA-2). Raises Hl7Error (an AR) when the MSH
    itself cannot be read; an unknown MSH-18 is left to ``tokenize_rest``.
    """
    lines = lines_of(message)
    if not lines or not lines[0].startswith("MSH"):
        raise Hl7Error("MSH", None, "a message must begin with an MSH segment", reject=True)
    encoding = encoding_of(lines[0], "MSH")
    msh = _split(lines[0], encoding, 1)
    charset = msh.raw(18).split(encoding.repetition, 1)[0].strip()
    codec = charset_codec(charset)
    if codec is not None and codec != encoding.codec:
        encoding = replace(encoding, codec=codec)
    head = Message(encoding, [msh], charset=charset, charset_known=codec is not None)
    return head, lines[1:]


def tokenize_rest(head: Message, rest: list[str]) -> Message:
    """``head`` with the segments of ``rest`` added. Raises Hl7Error for an unknown
    character set (AR) or a line that is no segment."""
    if not head.charset_known:
        raise Hl7Error("MSH", 18, UNKNOWN_CHARSET, reject=True)
    counts = {"MSH": 1}
    segments = head.segments
    encoding = head.encoding
    for line in rest:
        name = line[:3]
        counts[name] = counts.get(name, 0) + 1
        segments.append(_split(line, encoding, counts[name]))
    return head


def tokenize(message: str) -> Message:
    """Every segment of ``message``. Raises Hl7Error."""
    return tokenize_rest(*tokenize_head(message))


UNKNOWN_CHARSET = "unknown character set; use UNICODE UTF-8 or GB 18030-2000"
_UTF16_STARTS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, b"M\x00S\x00H\x00", b"\x00M\x00S\x00H")


def charset_codec(raw: str) -> str | None:
    # MSH-18 repeats (a second character set for code switching); the first one rules.
    return _CHARSETS.get(raw.split("~", 1)[0].strip().upper())


def decode_message(data: bytes) -> str:
    """The text of an HL7 message or batch in the character set its MSH-18 names.

    Raises Hl7Error (MSH-18) when the bytes are not in that character set.
    """
    return decode_with_codec(data)[0]


def decode_with_codec(data: bytes) -> tuple[str, str]:
    """``decode_message(data)`` and the codec it decoded with.

    A UTF-8 byte-order mark is dropped. A refusal (UTF-16, an unknown MSH-18, bytes
    not in the set MSH-18 names) is an Hl7Error whose ``text`` holds as much of the
    message as could be read, so that the answer can still name it.
    """
    data = data.removeprefix(codecs.BOM_UTF8)
    if data.startswith(_UTF16_STARTS):
        # Delimiters and MSH are ASCII, so a UTF-16 header is readable as UTF-16 alone.
        codec = "utf-16" if data[:2] in _UTF16_STARTS[:2] else _utf16_order(data)
        error = Hl7Error("MSH", 18, "UTF-16 is not taken; " + UNKNOWN_CHARSET[22:], reject=True)
        error.text = data.decode(codec, "replace")
        error.codec = codec
        raise error
    # Delimiters are ASCII in every character set we read, so a byte-wise view finds MSH-18.
    view = data.decode("latin-1")
    charset = ""
    # The MSH of a lone message is its first line; a batch's first MSH comes later.
    first = first_line(view)
    for line in [first] if first.startswith("MSH") else lines_of(view):
        if line.startswith("MSH") and len(line) > 3:
            fields = line.split(line[3])
            # fields[0] is MSH, fields[1] MSH-2, so MSH-n is fields[n - 1].
            charset = fields[17] if len(fields) > 17 else ""
            break
    known = charset_codec(charset)
    if known is None:
        error = Hl7Error("MSH", 18, UNKNOWN_CHARSET, reject=True)
        error.text = view
        raise error
    try:
        return data.decode(known), known
    except UnicodeDecodeError:
        error = Hl7Error(
            "MSH",
            18,
            f"message bytes are not valid {known}; set MSH-18 to the character set used",
        )
        error.text = view
        raise error from None


def _utf16_order(data: bytes) -> str:
    return "utf-16-le" if data[1:2] == b"\x00" else "utf-16-be"
