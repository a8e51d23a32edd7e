"""C2SP tlog-checkpoint note bodies (https://c2sp.org/tlog-checkpoint).

The body is: origin, decimal tree size, base64 root hash, then optional extension lines,
each ending in a newline. The body is the text of a signed note (see ``note``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hub.ledger.note import NoteError, Verifier, b64decode, b64encode, open_note

__all__ = ["Checkpoint", "format_checkpoint", "open_checkpoint", "parse_checkpoint"]

HASH_SIZE = 32
MAX_SIZE = 2**64 - 1  # tree sizes are uint64 in every tlog implementation
# ASCII digits only (\d would admit other scripts' digits); no leading zeros.
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class Checkpoint:
    """A log's signed tree head: origin, number of leaves and Merkle root."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()


def parse_decimal(text: str, what: str) -> int:
    """A uint64 in ASCII decimal without leading zeros (shared with receipts)."""
    if not _DECIMAL.fullmatch(text):
        raise NoteError(f"{what}: not a decimal without leading zeros: {text[:30]!r}")
    value = int(text)
    if value > MAX_SIZE:
        raise NoteError(f"{what}: out of range")
    return value


def _check_line(line: str, what: str) -> None:
    if not line:
        raise NoteError(f"checkpoint: {what} must not be empty")
    if any(c < " " for c in line):
        raise NoteError(f"checkpoint: {what} contains a control character")


def format_checkpoint(cp: Checkpoint) -> str:
    """The note text of ``cp``, ending with a newline."""
    _check_line(cp.origin, "origin")
    if not 0 <= cp.size <= MAX_SIZE:
        raise NoteError("checkpoint: size out of range")
    if len(cp.root) != HASH_SIZE:
        raise NoteError(f"checkpoint: root must be {HASH_SIZE} bytes")
    for ext in cp.extensions:
        _check_line(ext, "extension line")
    lines = [cp.origin, str(cp.size), b64encode(cp.root), *cp.extensions]
    return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint note text strictly; raises ``NoteError`` naming the bad line."""
    if not text.endswith("\n"):
        raise NoteError("checkpoint: text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("checkpoint: needs origin, size and root lines")
    origin, size_line, root_line, *extensions = lines
    _check_line(origin, "origin")
    size = parse_decimal(size_line, "checkpoint: tree size")
    root = b64decode(root_line, "checkpoint: root hash")
    if len(root) != HASH_SIZE:
        raise NoteError(f"checkpoint: root hash must be {HASH_SIZE} bytes")
    for ext in extensions:
        _check_line(ext, "extension line")
    return Checkpoint(origin, size, root, tuple(extensions))


def open_checkpoint(note: str, verifier: Verifier, origin: str | None = None) -> Checkpoint:
    """Verify ``note`` was signed by ``verifier``, parse it and check its origin if given."""
    text, _ = open_note(note, [verifier])
    cp = parse_checkpoint(text)
    if origin is not None and cp.origin != origin:
        raise NoteError(f"checkpoint: origin {cp.origin!r} is not the expected {origin!r}")
    return cp
