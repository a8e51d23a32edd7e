"""Issuer signatures: the hospital's Ed25519 key signs each body before it leaves.

signature = Ed25519 over ``canonical_json(body)`` (RFC 8785), sent as standard base64 in
``DocumentInput.signature``. The key file is PKCS#8 PEM, unencrypted (the adapter runs
unattended; protect the file, not the key in it).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.signing import SigningKey

from adapters.errors import AdapterError
from hub.documents.canonical import canonical_json

__all__ = ["DocumentSigner", "SigningKeyError", "verify_signature"]


class SigningKeyError(AdapterError):
    """The key file cannot be used for signing; the message says why."""


class DocumentSigner:
    """Signs document bodies with one Ed25519 private key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        # cryptography loads the PEM; libsodium signs (~55 µs against ~90 µs a 2 KB body).
        self._sodium = SigningKey(
            key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        )

    @classmethod
    def generate(cls) -> DocumentSigner:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, data: bytes) -> DocumentSigner:
        """Load an unencrypted PKCS#8 PEM Ed25519 private key."""
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except TypeError:
            raise SigningKeyError(
                "the signing key is encrypted; give an unencrypted PKCS#8 PEM file"
            ) from None
        except ValueError:
            raise SigningKeyError("the signing key is not a PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningKeyError(f"the signing key must be Ed25519, not {type(key).__name__}")
        return cls(key)

    @classmethod
    def from_file(cls, path: str | Path) -> DocumentSigner:
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise SigningKeyError(f"cannot read the signing key {path}: {error.strerror}") from None
        return cls.from_pem(data)

    def private_key_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    def public_key_pem(self) -> bytes:
        """The public key as SubjectPublicKeyInfo PEM, to register with the hub."""
        return self.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, body: Mapping[str, Any]) -> str:
        """Base64 Ed25519 signature of the body's RFC 8785 bytes."""
        return self.sign_canonical(canonical_json(dict(body)))

    def sign_canonical(self, canonical_body: bytes) -> str:
        """Base64 signature of bytes that are already ``canonical_json(body)``."""
        return base64.b64encode(self._sodium.sign(canonical_body).signature).decode("ascii")


def verify_signature(public_key: Ed25519PublicKey, body: Mapping[str, Any], signature: str) -> bool:
    """Whether ``signature`` (base64) is ``public_key``'s signature of ``body``."""
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key.verify(raw, canonical_json(dict(body)))
    except (ValueError, InvalidSignature):
        return False
    return True
