"""Recently verified bearer tokens, so a client's every request does not pay for a signature.

Verifying an EdDSA JWT costs ~100 µs (header and payload decoding, claim checks, the
signature), a large part of a cheap request. A token that verified is remembered by its
SHA-256 for a short while, never past its own ``exp``; a token that failed is not
remembered, so every bad token is checked in full. The price: a key dropped from the
IdP's JWKS stops working for tokens already seen only after ``ttl`` seconds.
"""

import base64
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from hashlib import sha256

from hub.auth.principal import Principal
from hub.auth.tokens import TokenVerifier

TTL_SECONDS = 30.0
MAX_CACHED_TOKENS = 10_000


def _expiry(token: str) -> float:
    """The ``exp`` claim of a token that has just verified (so it is well formed)."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return float(claims["exp"])


class VerifiedTokens:
    def __init__(
        self,
        verifier: TokenVerifier,
        ttl: float = TTL_SECONDS,
        size: int = MAX_CACHED_TOKENS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.verifier = verifier
        self.ttl = ttl
        self.size = size
        self._clock = clock
        self._seen: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()

    async def verify(self, token: str) -> Principal:
        """As TokenVerifier.verify, from the cache when this token verified recently."""
        key = sha256(token.encode()).digest()
        now = self._clock()
        hit = self._seen.get(key)
        if hit is not None:
            if now < hit[1]:
                return hit[0]
            del self._seen[key]
        principal = await self.verifier.verify(token)  # Unauthenticated: not remembered
        self._seen[key] = (principal, min(now + self.ttl, _expiry(token)))
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return principal
