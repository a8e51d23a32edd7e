"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys.

Keys and notes are byte-compatible with golang.org/x/mod/sumdb/note:

- key ID = SHA-256(name || 0x0A || 0x01 || 32-byte public key)[:4]
- verifier key ``<name>+<hex key ID>+base64(0x01 || public key)``
- signer key ``PRIVATE+KEY+<name>+<hex key ID>+base64(0x01 || private seed)``
- note: text ending in newline, a blank line, then ``— <name> base64(key ID || signature)``
  lines; every signature covers the text bytes, final newline included.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from hub.errors import BadInput

__all__ = [
    "ALG_ED25519",
    "MAX_SIGNATURES",
    "NoteError",
    "Signer",
    "Verifier",
    "b64decode",
    "b64encode",
    "format_verifier_key",
    "generate_signer_key",
    "key_id",
    "open_note",
    "parse_signer_key",
    "parse_verifier_key",
    "sign_note",
    "split_note",
]

ALG_ED25519 = 0x01
# Same bound as the Go implementation; the spec asks for at least 16.
MAX_SIGNATURES = 100

_SIG_PREFIX = "— "  # U+2014 EM DASH, then a space
_KEY_ID_HEX = re.compile(r"[0-9a-fA-F]{8}")
_PRIVATE_PREFIX = "PRIVATE+KEY+"


class NoteError(BadInput, ValueError):
    """A note, key or checkpoint is malformed or does not verify."""


def b64encode(data: bytes) -> str:
    """Standard base64 (RFC 4648 section 4) with padding."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, what: str = "base64") -> bytes:
    """Strict standard base64: alphabet, padding and canonical form are all checked.

    Canonical form matters because the signed bytes are the text: two spellings of
    the same hash must not both be accepted.
    """
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise NoteError(f"{what}: invalid base64") from exc
    if base64.b64encode(data).decode("ascii") != text:
        raise NoteError(f"{what}: non-canonical base64")
    return data


def _valid_name(name: str) -> bool:
    # Go: non-empty, valid UTF-8, no Unicode space, no '+'.
    return (
        bool(name)
        and "+" not in name
        and not any(c.isspace() for c in name)
        and _is_utf8(name)
        and not _has_control(name, allow_newline=False)
    )


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True


def _has_control(text: str, *, allow_newline: bool) -> bool:
    return any(c < " " and not (allow_newline and c == "\n") for c in text)


def _check_name(name: str) -> None:
    if not _valid_name(name):
        raise NoteError(f"invalid key name {name!r}: must be non-empty, no spaces, no '+'")


def key_id(name: str, public_key_bytes: bytes) -> bytes:
    """The 4-byte key ID of an Ed25519 key: SHA-256(name || 0x0A || 0x01 || key)[:4]."""
    if len(public_key_bytes) != 32:
        raise NoteError(f"Ed25519 public key must be 32 bytes, got {len(public_key_bytes)}")
    material = name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key_bytes
    return hashlib.sha256(material).digest()[:4]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True, eq=False)
class Verifier:
    """A named Ed25519 public key that checks note signatures."""

    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.key_id) != 4:
            raise NoteError("key ID must be 4 bytes")

    @classmethod
    def from_public_key(cls, name: str, public_key: Ed25519PublicKey) -> Verifier:
        return cls(name, key_id(name, _raw_public(public_key)), public_key)

    @property
    def public_key_bytes(self) -> bytes:
        return _raw_public(self.public_key)

    def verify(self, msg: bytes, sig: bytes) -> bool:
        """Whether ``sig`` (raw 64-byte Ed25519 signature, no key ID) signs ``msg``."""
        try:
            self.public_key.verify(sig, msg)
        except InvalidSignature:
            return False
        return True

    # Ed25519PublicKey is not hashable, so identity is (name, key ID, key bytes).
    def _identity(self) -> tuple[str, bytes, bytes]:
        return (self.name, self.key_id, self.public_key_bytes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Verifier):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __repr__(self) -> str:
        return f"Verifier({format_verifier_key(self)!r})"


@dataclass(frozen=True, eq=False)
class Signer:
    """A named Ed25519 private key that signs notes."""

    name: str
    key_id: bytes
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.key_id) != 4:
            raise NoteError("key ID must be 4 bytes")

    @classmethod
    def from_private_key(cls, name: str, private_key: Ed25519PrivateKey) -> Signer:
        return cls(name, key_id(name, _raw_public(private_key.public_key())), private_key)

    def sign(self, msg: bytes) -> bytes:
        """Raw 64-byte Ed25519 signature of ``msg``."""
        return self.private_key.sign(msg)

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.key_id, self.private_key.public_key())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Signer):
            return NotImplemented
        return self.verifier == other.verifier

    def __hash__(self) -> int:
        return hash(self.verifier)

    def __repr__(self) -> str:
        # Never print the private key.
        return f"Signer(name={self.name!r}, key_id={self.key_id.hex()!r})"


def _split_key_id(text: str, what: str) -> bytes:
    if not _KEY_ID_HEX.fullmatch(text):
        raise NoteError(f"{what}: key ID must be 8 hex digits")
    return bytes.fromhex(text)


def _decode_key_data(b64: str, what: str) -> bytes:
    data = b64decode(b64, what)
    if not data:
        raise NoteError(f"{what}: empty key data")
    if data[0] != ALG_ED25519:
        raise NoteError(f"{what}: unknown signature algorithm 0x{data[0]:02x}")
    if len(data) != 33:
        raise NoteError(f"{what}: Ed25519 key must be 32 bytes")
    return data[1:]


def generate_signer_key(name: str) -> tuple[str, str]:
    """A fresh Ed25519 key pair as (signer key ``PRIVATE+KEY+...``, verifier key)."""
    _check_name(name)
    signer = Signer.from_private_key(name, Ed25519PrivateKey.generate())
    return format_signer_key(signer), format_verifier_key(signer.verifier)


def format_signer_key(signer: Signer) -> str:
    """``PRIVATE+KEY+<name>+<hex key ID>+base64(0x01 || seed)``; keep it secret."""
    seed = signer.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    data = b64encode(bytes([ALG_ED25519]) + seed)
    return f"{_PRIVATE_PREFIX}{signer.name}+{signer.key_id.hex()}+{data}"


def parse_signer_key(skey: str) -> Signer:
    """Parse a signer key; the key ID must match the key derived from the seed."""
    what = "signer key"
    if not skey.startswith(_PRIVATE_PREFIX):
        raise NoteError(f"{what}: must start with {_PRIVATE_PREFIX!r}")
    # The base64 part may itself contain '+', so split at most twice.
    parts = skey[len(_PRIVATE_PREFIX) :].split("+", 2)
    if len(parts) != 3:
        raise NoteError(f"{what}: expected PRIVATE+KEY+<name>+<key ID>+<key>")
    name, id_hex, b64 = parts
    _check_name(name)
    kid = _split_key_id(id_hex, what)
    seed = _decode_key_data(b64, what)
    private_key = Ed25519PrivateKey.from_private_bytes(seed)
    if key_id(name, _raw_public(private_key.public_key())) != kid:
        raise NoteError(f"{what}: key ID does not match the key")
    return Signer(name, kid, private_key)


def parse_verifier_key(vkey: str) -> Verifier:
    """Parse ``<name>+<hex key ID>+base64(0x01 || public key)``; the key ID is checked."""
    what = "verifier key"
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise NoteError(f"{what}: expected <name>+<key ID>+<key>")
    name, id_hex, b64 = parts
    _check_name(name)
    kid = _split_key_id(id_hex, what)
    raw = _decode_key_data(b64, what)
    if key_id(name, raw) != kid:
        raise NoteError(f"{what}: key ID does not match the key")
    return Verifier(name, kid, Ed25519PublicKey.from_public_bytes(raw))


def format_verifier_key(verifier: Verifier) -> str:
    data = b64encode(bytes([ALG_ED25519]) + verifier.public_key_bytes)
    return f"{verifier.name}+{verifier.key_id.hex()}+{data}"


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("malformed note: text must be non-empty and end with a newline")
    if not _is_utf8(text) or _has_control(text, allow_newline=True):
        raise NoteError("malformed note: text must be UTF-8 without control characters")


def sign_note(text: str, *signers: Signer) -> str:
    """The signed note: ``text``, a blank line, one signature line per signer."""
    _check_text(text)
    if not signers:
        raise NoteError("a note needs at least one signature")
    msg = text.encode("utf-8")
    lines = [f"{_SIG_PREFIX}{s.name} {b64encode(s.key_id + s.sign(msg))}\n" for s in signers]
    return text + "\n" + "".join(lines)


def split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """A note's text and its signature lines as (key name, key ID || signature) pairs.

    Checks the note's form only; whose signatures they are is the caller's business.
    """
    if not _is_utf8(note) or _has_control(note, allow_newline=True):
        raise NoteError("malformed note: must be UTF-8 without control characters")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("malformed note: no blank line before the signatures")
    text, sig_block = note[: split + 1], note[split + 2 :]
    if not sig_block.endswith("\n"):
        raise NoteError("malformed note: signature block must end with a newline")
    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    signatures = []
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise NoteError(f"malformed note: not a signature line: {line[:40]!r}")
        name, sep, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep or not _valid_name(name):
            raise NoteError(f"malformed note: bad signature line: {line[:40]!r}")
        blob = b64decode(b64, "malformed note: signature")
        if len(blob) < 5:
            raise NoteError("malformed note: signature too short")
        signatures.append((name, blob))
    return text, signatures


def open_note(note: str, verifiers: Sequence[Verifier]) -> tuple[str, list[Verifier]]:
    """Verify ``note`` against the known ``verifiers``; return (text, verifiers that signed).

    As the spec requires: signatures whose (name, key ID) is unknown are ignored; a known
    key's signature that fails is an error; at least one known key must have signed.
    Repeated signatures by one key are checked once (like the Go implementation).
    """
    text, signatures = split_note(note)
    known: dict[tuple[str, bytes], list[Verifier]] = {}
    for v in verifiers:
        same = known.setdefault((v.name, v.key_id), [])
        if v not in same:
            same.append(v)

    msg = text.encode("utf-8")
    signed: list[Verifier] = []
    seen: set[tuple[str, bytes]] = set()
    for name, blob in signatures:
        kid, sig = blob[:4], blob[4:]
        candidates = known.get((name, kid))
        if not candidates or (name, kid) in seen:
            continue
        if len(candidates) > 1:
            raise NoteError(f"ambiguous key {name}+{kid.hex()}")
        seen.add((name, kid))
        verifier = candidates[0]
        if not verifier.verify(msg, sig):
            raise NoteError(f"invalid signature for key {name}+{kid.hex()}")
        signed.append(verifier)
    if not signed:
        raise NoteError("note has no verifiable signatures")
    return text, signed
