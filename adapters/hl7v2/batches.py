"""Batch files: FHS/BHS envelopes split into messages, with their envelope faults."""

from __future__ import annotations

from dataclasses import dataclass, field

from adapters.hl7v2.encoding import Encoding
from adapters.hl7v2.errors import SEGMENT_SEQUENCE_ERROR, Hl7Error
from adapters.hl7v2.tokenizer import SEGMENT_NAME, encoding_of, first_line, lines_of


@dataclass(frozen=True, slots=True)
class Batch:
    """The messages of a batch file, and what is wrong with its envelope."""

    messages: list[str]
    problems: list[Hl7Error] = field(default_factory=list)


def batch_encoding(text: str) -> Encoding:
    """The delimiters a batch file's header (FHS or BHS) declares; the default ones if
    they cannot be read."""
    line = first_line(text)
    try:
        return encoding_of(line, line[:3])
    except Hl7Error:
        return Encoding()


# --------------------------------------------------------------------------- batches


def is_batch(text: str) -> bool:
    """Whether ``text`` is a batch file (starts with FHS or BHS) rather than one message."""
    return first_line(text)[:3] in ("FHS", "BHS")


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

    for line in lines_of(text):
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
            note(name if SEGMENT_NAME.fullmatch(name) else "?", None, "segment outside a message")
        else:
            current.append(line)
    if in_batch:
        note("BTS", None, "batch trailer missing: the batch may be truncated")
    if in_file and not file_closed:
        note("FTS", None, "file trailer missing: the file may be truncated")
    return Batch(messages=["\r".join(lines) + "\r" for lines in messages], problems=problems)
