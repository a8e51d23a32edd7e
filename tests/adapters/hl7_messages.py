"""Messages for the HL7 v2 tests: demo invoices and edits of a message's segments."""

import copy
from typing import Any

import pytest

from adapters.hl7v2 import Hl7Error, read_dft_p03
from hub.documents.demo_data import demo_invoices

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


def msa_of(reply: str) -> list[str]:
    line = next(s for s in reply.split("\r") if s.startswith("MSA"))
    return line.split(line[3])


def custom_delimiters(message: str) -> str:
    """``message`` with field ``#``, component ``$``, repetition ``%``, escape ``!``."""
    table = str.maketrans({"|": "#", "^": "$", "~": "%", "\\": "!"})
    return message.translate(table)


def batch_file(messages: list[str], *, bts: str | None = None, fts: bool = True) -> str:
    lines = ["FHS|^~\\&|HIS|46010126", "BHS|^~\\&|HIS|46010126"]
    for message in messages:
        lines.extend(segments(message))
    lines.append(f"BTS|{len(messages) if bts is None else bts}")
    if fts:
        lines.append("FTS|1")
    return "\n".join(lines) + "\n"
