"""Receipts: C2SP tlog-proof@v1 text (https://c2sp.org/tlog-proof), file extension
``.tlog-proof``::

    c2sp.org/tlog-proof@v1
    extra <base64 leaf data>        (optional)
    index <decimal>
    <base64 inclusion proof hash>   (zero or more, leaf's sibling first)

    <the signed checkpoint note, verbatim>

The ``extra`` line carries the leaf data so an offline verifier can recompute the leaf
hash. It is not authenticated by itself: it is trusted only because its leaf hash is
proven included under a checkpoint signed by the log's key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hub.errors import BadInput
from hub.ledger.checkpoint import HASH_SIZE, Checkpoint, parse_checkpoint, parse_decimal
from hub.ledger.note import NoteError, Verifier, b64decode, b64encode, open_note
from hub.ledger.tree import leaf_hash, verify_inclusion

__all__ = [
    "HEADER",
    "Receipt",
    "ReceiptError",
    "format_receipt",
    "parse_receipt",
    "verify_receipt",
]

HEADER = "c2sp.org/tlog-proof@v1"
# An inclusion proof in a tree of at most 2**64 - 1 leaves has at most 64 hashes.
MAX_PROOF_HASHES = 64

Step = Literal["format", "signature", "leaf", "inclusion"]


class ReceiptError(BadInput, ValueError):
    """A receipt failed to parse or verify; ``step`` names what failed:

    - ``format``: the receipt or its checkpoint body is malformed
    - ``signature``: the checkpoint note is not validly signed by the given key
    - ``leaf``: there is no leaf data to check (no ``extra`` line and none given)
    - ``inclusion``: the leaf hash is not proven under the checkpoint's root. Wrong leaf
      data surfaces here too: what the proof covers is the leaf hash, so a different
      document and a tampered proof are indistinguishable.
    """

    def __init__(self, step: Step, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step: Step = step


@dataclass(frozen=True)
class Receipt:
    """Proof that the leaf at ``index`` is in the tree of a signed checkpoint."""

    index: int
    proof: tuple[bytes, ...]
    checkpoint_note: str
    extra: bytes | None = None


def format_receipt(r: Receipt) -> str:
    """The ``.tlog-proof`` text of ``r``."""
    if not 0 <= r.index < 2**64:
        raise ReceiptError("format", "index out of range")
    if len(r.proof) > MAX_PROOF_HASHES:
        raise ReceiptError("format", "inclusion proof too long")
    if any(len(h) != HASH_SIZE for h in r.proof):
        raise ReceiptError("format", f"proof hashes must be {HASH_SIZE} bytes")
    if not r.checkpoint_note.endswith("\n"):
        raise ReceiptError("format", "checkpoint note must end with a newline")
    lines = [HEADER]
    if r.extra is not None:
        lines.append(f"extra {b64encode(r.extra)}")
    lines.append(f"index {r.index}")
    lines.extend(b64encode(h) for h in r.proof)
    return "\n".join(lines) + "\n\n" + r.checkpoint_note


def parse_receipt(text: str) -> Receipt:
    """Parse ``.tlog-proof`` text strictly; raises ``ReceiptError`` with step ``format``."""
    try:
        return _parse(text)
    except NoteError as exc:
        raise ReceiptError("format", str(exc)) from exc


def _parse(text: str) -> Receipt:
    # Proof lines are non-empty, so the first empty line ends them.
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise ReceiptError("format", "no empty line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != HEADER:
        raise ReceiptError("format", f"first line must be {HEADER!r}")
    pos = 1
    extra = None
    if pos < len(lines) and lines[pos].startswith("extra "):
        extra = b64decode(lines[pos].removeprefix("extra "), "extra line")
        pos += 1
    if pos >= len(lines) or not lines[pos].startswith("index "):
        raise ReceiptError("format", "missing 'index <n>' line")
    index = parse_decimal(lines[pos].removeprefix("index "), "index")
    hash_lines = lines[pos + 1 :]
    if len(hash_lines) > MAX_PROOF_HASHES:
        raise ReceiptError("format", "inclusion proof too long")
    proof = []
    for n, line in enumerate(hash_lines):
        h = b64decode(line, f"proof hash {n}")
        if len(h) != HASH_SIZE:
            raise ReceiptError("format", f"proof hash {n} must be {HASH_SIZE} bytes")
        proof.append(h)
    if not note.endswith("\n"):
        raise ReceiptError("format", "checkpoint note missing or not ending in a newline")
    return Receipt(index, tuple(proof), note, extra)


def verify_receipt(text: str, verifier: Verifier, leaf_data: bytes | None = None) -> Checkpoint:
    """Verify a receipt offline and return its checkpoint.

    The leaf data checked is ``leaf_data`` if given (e.g. recomputed from the document the
    holder has), otherwise the receipt's ``extra`` line.
    """
    r = parse_receipt(text)
    try:
        body, _ = open_note(r.checkpoint_note, [verifier])
    except NoteError as exc:
        raise ReceiptError("signature", str(exc)) from exc
    try:
        cp = parse_checkpoint(body)
    except NoteError as exc:
        raise ReceiptError("format", str(exc)) from exc
    data = leaf_data if leaf_data is not None else r.extra
    if data is None:
        raise ReceiptError("leaf", "no leaf data: the receipt has no extra line and none given")
    if r.index >= cp.size:
        raise ReceiptError("inclusion", f"index {r.index} is not below tree size {cp.size}")
    try:
        verify_inclusion(r.index, cp.size, leaf_hash(data), r.proof, cp.root)
    except ValueError as exc:  # ProofError, or arguments tree.py rejects
        raise ReceiptError("inclusion", str(exc)) from exc
    return cp
