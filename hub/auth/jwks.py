"""An IdP's signing keys, fetched from its JWKS URL off the event loop and cached.

A token naming an unknown ``kid`` triggers one refetch, so rotated keys are picked up
at once; refetches are spaced by ``min_refresh_interval`` so that random ``kid``s
cannot turn us into a load generator against the IdP.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from hub.errors import ConfigError, Unauthenticated

__all__ = ["FETCH_TIMEOUT", "MAX_JWKS_BYTES", "JwksCache", "JwksError", "parse_jwks"]

log = logging.getLogger(__name__)

FETCH_TIMEOUT: Final = 5.0
MAX_JWKS_BYTES: Final = 1 << 20
# Symmetric ("oct") keys never verify tokens here: their use would need a shared secret.
_KEY_TYPES: Final = frozenset({"OKP", "EC", "RSA"})
_MIN_RSA_BITS: Final = 2048


class JwksError(ConfigError, ValueError):
    """A JWKS document could not be fetched or holds no usable key."""


class JwksCache:
    """Signing keys by ``kid`` from the JWK Set at ``url``.

    ``fetch`` (default: an httpx GET with a 5 s timeout) runs in a worker thread and
    returns the document's bytes; ``clock`` is monotonic seconds. If a refetch fails the
    previous keys stay in use until one succeeds.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl: float = 300.0,
        min_refresh_interval: float = 10.0,
        fetch: Callable[[str], bytes] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError("JWKS URL must be http(s)")
        self._url = url
        self._ttl = ttl
        self._min_interval = min_refresh_interval
        self._fetch = fetch or http_get
        self._clock = clock
        self._keys: MappingProxyType[str, tuple[Any, str]] = MappingProxyType({})
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()

    @property
    def url(self) -> str:
        return self._url

    async def key_for(self, kid: str) -> tuple[Any, str]:
        """The public key object and its JWS algorithm for ``kid``; Unauthenticated if unknown."""
        if self._lock.locked():
            # A refresh is in flight; its result may answer us, and it counts against
            # the rate limit, so wait for it instead of deciding on stale state.
            async with self._lock:
                pass
        now = self._clock()
        if self._expired(now) and self._may_fetch(now):
            await self._refresh()
        entry = self._keys.get(kid)
        if entry is None and self._may_fetch(self._clock()):
            await self._refresh()
            entry = self._keys.get(kid)
        if entry is not None:
            return entry
        if self._fetched_at is None:
            raise Unauthenticated("the identity provider's keys are unavailable")
        raise Unauthenticated("unknown key id")

    def _expired(self, now: float) -> bool:
        return self._fetched_at is None or now - self._fetched_at >= self._ttl

    def _may_fetch(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self._min_interval

    async def _refresh(self) -> None:
        async with self._lock:
            self._attempted_at = self._clock()
            try:
                body = await asyncio.to_thread(self._fetch, self._url)
                keys = parse_jwks(body)
            # Any failure of the IdP or of a custom fetch means "keep the old keys".
            except Exception as exc:
                log.warning("JWKS fetch from %s failed: %s: %s", self._url, type(exc).__name__, exc)
            else:
                self._keys = MappingProxyType(keys)
                self._fetched_at = self._clock()


def http_get(url: str) -> bytes:
    """GET ``url`` with a timeout and a size cap; raises on any non-2xx status."""
    with (
        httpx.Client(timeout=FETCH_TIMEOUT, follow_redirects=False) as client,
        client.stream("GET", url, headers={"Accept": "application/json"}) as response,
    ):
        response.raise_for_status()
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MAX_JWKS_BYTES:
                raise JwksError(f"JWKS is larger than {MAX_JWKS_BYTES} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def parse_jwks(body: bytes) -> dict[str, tuple[Any, str]]:
    """``kid -> (public key, alg)`` for each usable signing key of a JWK Set.

    Keys without a ``kid``, not meant for signatures, symmetric, or otherwise unusable
    are skipped; a set with no usable key at all is an error.
    """
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise JwksError("JWKS is not JSON") from exc
    members = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(members, list):
        raise JwksError("JWKS has no keys array")
    keys: dict[str, tuple[Any, str]] = {}
    for member in members:
        parsed = _signing_key(member)
        if parsed is not None and parsed[0] not in keys:
            kid, key, alg = parsed
            keys[kid] = (key, alg)
    if not keys:
        raise JwksError("JWKS holds no usable signing key")
    return keys


def _signing_key(member: object) -> tuple[str, Any, str] | None:
    if not isinstance(member, dict):
        return None
    kid = member.get("kid")
    if not isinstance(kid, str) or not kid or member.get("kty") not in _KEY_TYPES:
        return None
    if member.get("use", "sig") != "sig" or "d" in member:
        return None  # an encryption key, or a private key that was never meant to be public
    ops = member.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return None
    try:
        jwk = jwt.PyJWK(member)
    except jwt.PyJWTError:
        return None
    if isinstance(jwk.key, RSAPublicKey) and jwk.key.key_size < _MIN_RSA_BITS:
        return None
    return kid, jwk.key, jwk.algorithm_name
