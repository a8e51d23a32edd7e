"""The cache of verified tokens: hits skip verification, but never outlive the token."""

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.access.ratelimit import RateLimiter, Unlimited, request_limiter
from hub.auth.tokens import TokenIssuer, TokenSettings, TokenVerifier, kid_for
from hub.config import Settings
from hub.errors import Unauthenticated
from schema.token_cache import VerifiedTokens

SETTINGS = TokenSettings(issuer="hub", audience="hub")


class CountingVerifier(TokenVerifier):
    calls = 0

    async def verify(self, token: str):  # type: ignore[no-untyped-def]
        self.calls += 1
        return await super().verify(token)


def make(now: float) -> tuple[TokenIssuer, CountingVerifier]:
    key = Ed25519PrivateKey.generate()
    kid = kid_for(key.public_key())
    return TokenIssuer(key, kid, SETTINGS), CountingVerifier(SETTINGS, {kid: key.public_key()})


async def test_a_verified_token_is_served_from_the_cache_until_its_ttl() -> None:
    clock = [1_000.0]
    issuer, verifier = make(clock[0])
    cache = VerifiedTokens(verifier, ttl=30, clock=lambda: clock[0])
    token = issuer.issue(role="agency", sub="a", inst="bureau", ttl=3600)
    first = await cache.verify(token)
    assert await cache.verify(token) == first
    assert verifier.calls == 1
    clock[0] += 31
    await cache.verify(token)
    assert verifier.calls == 2


async def test_a_cached_token_is_not_used_past_its_exp() -> None:
    import time

    now = time.time()
    clock = [now]
    issuer, verifier = make(now)
    cache = VerifiedTokens(verifier, ttl=3600, clock=lambda: clock[0])
    token = issuer.issue(role="agency", sub="a", inst="bureau", ttl=10, now=now)
    await cache.verify(token)
    clock[0] = now + 11  # past exp: the cache must ask the verifier again
    await cache.verify(token)
    assert verifier.calls == 2


async def test_bad_tokens_are_never_cached() -> None:
    issuer, verifier = make(0)
    cache = VerifiedTokens(verifier)
    token = issuer.issue(role="agency", sub="a", inst="bureau", ttl=3600)
    altered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            await cache.verify(altered)
    assert verifier.calls == 2


def test_hub_rate_limit_setting() -> None:
    assert Settings.from_env({}).rate_limit == 100.0
    assert Settings.from_env({"HUB_RATE_LIMIT": "0"}).rate_limit == 0.0
    for bad in ("-1", "fast", "inf", "nan"):
        with pytest.raises(ValueError, match="HUB_RATE_LIMIT"):
            Settings.from_env({"HUB_RATE_LIMIT": bad})
    assert isinstance(request_limiter(0), Unlimited)
    limiter = request_limiter(5)
    assert isinstance(limiter, RateLimiter) and limiter.burst == 10
