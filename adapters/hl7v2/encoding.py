"""The delimiters of one message (MSH-1, MSH-2) and HL7 escape sequences, both ways."""

from __future__ import annotations

from dataclasses import dataclass


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
