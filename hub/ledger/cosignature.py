"""C2SP tlog-cosignature v1 with Ed25519 (https://c2sp.org/tlog-cosignature).

A witness's statement that, at ``timestamp``, the checkpoint is the largest consistent
tree it has seen for the log. Every byte is the spec's:

- key ID = SHA-256(name || 0x0A || 0x04 || 32-byte public key)[:4]
- verifier key ``<name>+<hex key ID>+base64(0x04 || public key)``
- signed message ``cosignature/v1\\ntime <unix>\\n`` + the checkpoint's note text
- signature line ``— <name> base64(key ID || u64 big-endian timestamp || signature)``

Cosigner keys are ``note.Verifier`` / ``note.Signer`` objects whose key ID is derived with
0x04, so a log key (0x01) and a cosigner key never share an ID. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from hub.ledger.note import NoteError, Signer, Verifier, b64decode, b64encode, split_note

__all__ = [
    "ALG_COSIGNATURE_V1",
    "Cosignature",
    "CosignatureError",
    "cosign",
    "cosignature_message",
    "cosigner_key_id",
    "format_cosigner_key",
    "format_cosigner_signer_key",
    "generate_cosigner_key",
    "parse_cosigner_key",
    "parse_cosigner_signer_key",
    "verify_cosignatures",
]

ALG_COSIGNATURE_V1 = 0x04
HEADER = "cosignature/v1\n"
SIGNATURE_BYTES = 4 + 8 + 64  # key ID, timestamp, Ed25519 signature
MAX_TIMESTAMP = 2**63 - 1
_PRIVATE_PREFIX = "PRIVATE+KEY+"


class CosignatureError(NoteError):
    """A cosigner key, cosignature line or cosigned note is malformed or does not verify."""


@dataclass(frozen=True)
class Cosignature:
    """One verified cosignature: who (their verifier) and when (POSIX seconds)."""

    witness: Verifier
    timestamp: int
    line: str  # the note signature line, newline included


def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    if len(public_key) != 32:
        raise CosignatureError(f"Ed25519 public key must be 32 bytes, got {len(public_key)}")
    material = name.encode("utf-8") + b"\n" + bytes([ALG_COSIGNATURE_V1]) + public_key
    return hashlib.sha256(material).digest()[:4]


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _key_material(b64: str, what: str) -> bytes:
    data = b64decode(b64, what)
    if len(data) != 33 or data[0] != ALG_COSIGNATURE_V1:
        raise CosignatureError(
            f"{what}: expected base64(0x04 || 32-byte Ed25519 key), a tlog-cosignature v1 key"
        )
    return data[1:]


def _split(text: str, what: str) -> tuple[str, bytes, str]:
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise CosignatureError(f"{what}: expected <name>+<key ID>+<key>")
    name, id_hex, b64 = parts
    if len(id_hex) != 8 or any(c not in "0123456789abcdefABCDEF" for c in id_hex):
        raise CosignatureError(f"{what}: key ID must be 8 hex digits")
    return name, bytes.fromhex(id_hex), b64


def parse_cosigner_key(vkey: str) -> Verifier:
    """``<name>+<hex key ID>+base64(0x04 || public key)``; the key ID is checked."""
    what = "cosigner verifier key"
    name, kid, b64 = _split(vkey.strip(), what)
    raw = _key_material(b64, what)
    if cosigner_key_id(name, raw) != kid:
        raise CosignatureError(f"{what}: key ID does not match the key")
    return Verifier(name, kid, Ed25519PublicKey.from_public_bytes(raw))


def format_cosigner_key(verifier: Verifier) -> str:
    data = b64encode(bytes([ALG_COSIGNATURE_V1]) + verifier.public_key_bytes)
    return f"{verifier.name}+{verifier.key_id.hex()}+{data}"


def parse_cosigner_signer_key(skey: str) -> Signer:
    """``PRIVATE+KEY+<name>+<hex key ID>+base64(0x04 || seed)``; the key ID is checked."""
    what = "cosigner signer key"
    skey = skey.strip()
    if not skey.startswith(_PRIVATE_PREFIX):
        raise CosignatureError(f"{what}: must start with {_PRIVATE_PREFIX!r}")
    name, kid, b64 = _split(skey[len(_PRIVATE_PREFIX) :], what)
    private_key = Ed25519PrivateKey.from_private_bytes(_key_material(b64, what))
    if cosigner_key_id(name, _raw(private_key.public_key())) != kid:
        raise CosignatureError(f"{what}: key ID does not match the key")
    return Signer(name, kid, private_key)


def format_cosigner_signer_key(signer: Signer) -> str:
    seed = signer.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    data = b64encode(bytes([ALG_COSIGNATURE_V1]) + seed)
    return f"{_PRIVATE_PREFIX}{signer.name}+{signer.key_id.hex()}+{data}"


def generate_cosigner_key(name: str) -> Signer:
    private_key = Ed25519PrivateKey.generate()
    kid = cosigner_key_id(name, _raw(private_key.public_key()))
    return Signer(name, kid, private_key)


def cosignature_message(text: str, timestamp: int) -> bytes:
    """What the witness signs: the header line, the time line, the checkpoint's text."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise CosignatureError(f"cosignature timestamp out of range: {timestamp}")
    if not text.endswith("\n"):
        raise CosignatureError("the cosigned checkpoint text must end with a newline")
    return f"{HEADER}time {timestamp}\n{text}".encode()


def cosign(signer: Signer, text: str, timestamp: int) -> str:
    """The note signature line of ``signer``'s cosignature on checkpoint ``text``."""
    if timestamp == 0:
        raise CosignatureError("a checkpoint cosignature never has timestamp 0")
    sig = signer.sign(cosignature_message(text, timestamp))
    blob = signer.key_id + timestamp.to_bytes(8, "big") + sig
    return f"— {signer.name} {b64encode(blob)}\n"


def verify_cosignatures(note: str, witnesses: Sequence[Verifier]) -> list[Cosignature]:
    """The valid cosignatures on ``note`` by the given witnesses, in line order.

    As signed-note asks: lines whose (name, key ID) no witness has are ignored (the log's
    own signature among them); a known witness's line that fails is an error, not skipped.
    """
    text, signatures = split_note(note)
    known = {(w.name, w.key_id): w for w in witnesses}
    found: list[Cosignature] = []
    seen: set[tuple[str, bytes]] = set()
    for name, blob in signatures:
        witness = known.get((name, blob[:4]))
        if witness is None or (name, blob[:4]) in seen:
            continue
        if len(blob) != SIGNATURE_BYTES:
            raise CosignatureError(f"cosignature of {name}: {len(blob)} bytes, not 76")
        timestamp = int.from_bytes(blob[4:12], "big")
        if timestamp == 0 or timestamp > MAX_TIMESTAMP:
            raise CosignatureError(f"cosignature of {name}: timestamp out of range")
        if not witness.verify(cosignature_message(text, timestamp), blob[12:]):
            raise CosignatureError(f"invalid cosignature by {name}+{blob[:4].hex()}")
        seen.add((name, blob[:4]))
        found.append(Cosignature(witness, timestamp, f"— {name} {b64encode(blob)}\n"))
    return found
