"""Bearer tokens: the hub issues EdDSA JWTs with its own key and verifies them, or an IdP's.

Verification follows RFC 8725: the algorithm comes from the key, never from the token;
the header's ``alg`` only has to agree with it. The hub's own keys are Ed25519 and are
accepted with EdDSA alone; a JWKS may additionally supply ES256 or RS256 keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from hub.auth.principal import Principal
from hub.errors import Unauthenticated

if TYPE_CHECKING:
    from hub.auth.jwks import JwksCache

__all__ = [
    "ALLOWED_ALGORITHMS",
    "JWKS_ALGORITHMS",
    "LEEWAY_SECONDS",
    "MAX_TOKEN_LENGTH",
    "REQUIRED_CLAIMS",
    "TOKEN_TYP",
    "TokenIssuer",
    "TokenSettings",
    "TokenVerifier",
    "kid_for",
    "load_or_create_jwt_key",
    "public_jwks",
]

TOKEN_TYP: Final = "JWT"
# `typ` values accepted, compared case-insensitively; RFC 7515 section 4.1.9 lets
# "application/" be left off, so both spellings are accepted.
_ACCEPTED_TYPS: Final = frozenset({"jwt", "at+jwt"})
ALLOWED_ALGORITHMS: Final = ("EdDSA",)
JWKS_ALGORITHMS: Final = ("EdDSA", "ES256", "RS256")
# Only asymmetric algorithms can ever be configured: with a symmetric one, a public
# key would double as an HMAC secret.
_ASYMMETRIC: Final = frozenset(
    {"EdDSA", "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
)
LEEWAY_SECONDS: Final = 30
REQUIRED_CLAIMS: Final = ("exp", "iat", "iss", "aud", "sub")
# Far above any real token; keeps a hostile header from costing us a large parse.
MAX_TOKEN_LENGTH: Final = 8192
_MAX_KID_LENGTH: Final = 256


@dataclass(frozen=True)
class TokenSettings:
    """What a valid token must say (``iss``, ``aud``) and how it may be signed.

    ``algorithms`` applies to the hub's own keys, ``jwks_algorithms`` to keys from the
    IdP's JWKS. ``max_ttl`` bounds ``exp - iat`` both when issuing and when verifying.
    """

    issuer: str
    audience: str
    leeway: int = LEEWAY_SECONDS
    algorithms: tuple[str, ...] = ALLOWED_ALGORITHMS
    max_ttl: int = 7 * 24 * 3600
    jwks_algorithms: tuple[str, ...] = JWKS_ALGORITHMS

    def __post_init__(self) -> None:
        if not self.issuer or not self.audience:
            raise ValueError("token issuer and audience must be non-empty")
        if self.leeway < 0:
            raise ValueError("token leeway must not be negative")
        if self.max_ttl <= 0:
            raise ValueError("token max_ttl must be positive")
        for name in ("algorithms", "jwks_algorithms"):
            bad = sorted(set(getattr(self, name)) - _ASYMMETRIC)
            if bad:
                raise ValueError(f"token {name}: not an allowed asymmetric algorithm: {bad}")


class TokenIssuer:
    """Signs tokens with the hub's own Ed25519 key."""

    def __init__(self, private_key: Ed25519PrivateKey, kid: str, settings: TokenSettings) -> None:
        if "EdDSA" not in settings.algorithms:
            raise ValueError("EdDSA is not an allowed algorithm, so issued tokens would not verify")
        if not kid or len(kid) > _MAX_KID_LENGTH:
            raise ValueError(f"kid must be 1 to {_MAX_KID_LENGTH} characters")
        self._key = private_key
        self._kid = kid
        self._settings = settings

    @property
    def kid(self) -> str:
        return self._kid

    def issue(
        self,
        *,
        role: str,
        sub: str,
        inst: str | None = None,
        ttl: int = 3600,
        now: float | None = None,
    ) -> str:
        """A signed JWT for ``Principal(role, sub, inst)``, valid from ``now`` for ``ttl`` s.

        Raises ValueError naming the problem when the role, subject, institution or
        lifetime is not acceptable.
        """
        Principal(role=role, sub=sub, inst=inst)  # validates the combination
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
            raise ValueError("ttl must be a positive number of seconds")
        if ttl > self._settings.max_ttl:
            raise ValueError(f"ttl must not exceed {self._settings.max_ttl} seconds")
        iat = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "iss": self._settings.issuer,
            "aud": self._settings.audience,
            "sub": sub,
            "iat": iat,
            "nbf": iat,
            "exp": iat + ttl,
            "role": role,
            "jti": secrets.token_urlsafe(16),
        }
        if inst is not None:
            claims["inst"] = inst
        return jwt.encode(
            claims, self._key, algorithm="EdDSA", headers={"kid": self._kid, "typ": TOKEN_TYP}
        )


class TokenVerifier:
    """Turns a bearer token into a Principal, or raises Unauthenticated."""

    def __init__(
        self,
        settings: TokenSettings,
        local_keys: Mapping[str, Ed25519PublicKey],
        jwks: JwksCache | None = None,
    ) -> None:
        self._settings = settings
        self._local = MappingProxyType(dict(local_keys))
        self._jwks = jwks
        header_algs = set(settings.algorithms)
        if jwks is not None:
            header_algs |= set(settings.jwks_algorithms)
        self._header_algs = frozenset(header_algs)

    async def verify(self, token: str) -> Principal:
        """The principal of a compact JWT (no "Bearer " prefix); Unauthenticated unless it verifies.

        Keys are looked up by ``kid``: the hub's own first, then the JWKS.
        """
        if not isinstance(token, str) or not token:
            raise Unauthenticated("token is empty")
        if len(token) > MAX_TOKEN_LENGTH:
            raise Unauthenticated(f"token is longer than {MAX_TOKEN_LENGTH} characters")
        header = _unverified_header(token)
        alg = header.get("alg")
        # Checked before any key lookup, so `none`/HS* tokens never reach the JWKS.
        if not isinstance(alg, str) or alg not in self._header_algs:
            raise Unauthenticated("token algorithm is not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > _MAX_KID_LENGTH:
            raise Unauthenticated("token has no usable key id (kid)")
        key, key_alg, allowed = await self._key_for(kid)
        if key_alg not in allowed:
            raise Unauthenticated("the signing key's algorithm is not allowed")
        if alg != key_alg:
            raise Unauthenticated("token algorithm does not match its key")
        claims = self._decode(token, key, key_alg)
        return _principal(claims, self._settings.max_ttl, self._settings.leeway)

    async def _key_for(self, kid: str) -> tuple[Any, str, tuple[str, ...]]:
        local = self._local.get(kid)
        if local is not None:
            return local, "EdDSA", self._settings.algorithms
        if self._jwks is None:
            raise Unauthenticated("unknown key id")
        key, key_alg = await self._jwks.key_for(kid)
        return key, key_alg, self._settings.jwks_algorithms

    def _decode(self, token: str, key: Any, alg: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                leeway=self._settings.leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.PyJWTError as exc:
            # pyjwt's own messages are not part of our contract; ours are.
            raise Unauthenticated(_describe(exc)) from None


def _unverified_header(token: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthenticated("token is malformed") from None
    typ = header.get("typ")
    if not isinstance(typ, str) or _media_type(typ) not in _ACCEPTED_TYPS:
        raise Unauthenticated("token type (typ) must be JWT or at+jwt")
    # No extension is understood here; b64=false would change what the signature covers.
    if "crit" in header or "b64" in header:
        raise Unauthenticated("token uses unsupported critical header parameters")
    return header


def _media_type(typ: str) -> str:
    lowered = typ.lower()
    return lowered.removeprefix("application/")


def _describe(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"token is missing the {exc.claim} claim"
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "token has expired"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "token is not yet valid"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "token is for another audience (aud)"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "token is from another issuer (iss)"
    if isinstance(exc, jwt.InvalidIssuedAtError):
        return "token issued-at (iat) is not a number"
    if isinstance(exc, jwt.exceptions.InvalidSubjectError):
        return "token subject (sub) is not a string"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "token signature does not verify"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "token algorithm is not allowed"
    return "token is malformed"


def _principal(claims: dict[str, Any], max_ttl: int, leeway: int) -> Principal:
    times: dict[str, float] = {}
    for name in ("exp", "iat", "nbf"):
        value = claims.get(name)
        if name == "nbf" and value is None:
            continue
        # pyjwt coerces strings with int(); RFC 7519 wants a JSON number.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Unauthenticated(f"token {name} claim must be a number")
        times[name] = value
    if times["exp"] - times["iat"] > max_ttl:
        raise Unauthenticated(f"token lifetime exceeds {max_ttl} seconds")
    role = claims.get("role")
    if not isinstance(role, str):
        raise Unauthenticated("token has no role claim")
    try:
        return Principal(
            role=role,
            sub=claims["sub"],
            inst=claims.get("inst"),
            expires_at=times["exp"] + leeway,
        )
    except ValueError as exc:
        raise Unauthenticated(f"token principal is invalid: {exc}") from None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _okp_x(public_key: Ed25519PublicKey) -> str:
    return _b64url(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def kid_for(public_key: Ed25519PublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of the key as an RFC 8037 OKP JWK."""
    # Required members only, in lexicographic order, no whitespace (RFC 7638 section 3).
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": _okp_x(public_key)}, separators=(",", ":")
    )
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def public_jwks(keys: Mapping[str, Ed25519PublicKey]) -> dict[str, Any]:
    """A JWK Set (RFC 7517 section 5) of the hub's token keys, for publishing."""
    return {
        "keys": [
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "x": _okp_x(key),
                "kid": kid,
                "alg": "EdDSA",
                "use": "sig",
            }
            for kid, key in sorted(keys.items())
        ]
    }


def load_or_create_jwt_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 key in the PEM (PKCS#8) file at ``path``, created with mode 0600 if absent.

    Raises ValueError when the file holds something other than an unencrypted Ed25519 key.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return _create_key(path)
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def _create_key(path: Path) -> Ed25519PrivateKey:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    # Written in full under a private name, then linked into place: a concurrent
    # creator either wins the link or reads a complete file, never half of one.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return load_or_create_jwt_key(path)
    finally:
        tmp.unlink(missing_ok=True)
    return key
