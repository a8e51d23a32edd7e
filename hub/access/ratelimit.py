"""Request limits kept in memory, with the clock injected so tests need no sleeping.

Both limiters are per process: with several hub pods a client gets the limit once per
pod, which still bounds guessing to a small multiple of what one pod allows.
"""

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from hub.errors import RateLimited

Clock = Callable[[], float]
# Bounds the memory an attacker can make us spend by inventing client keys.
MAX_KEYS = 100_000


def retry_seconds(wait: float) -> int:
    """Whole seconds to wait, rounded up: a client that waits what it was told gets in,
    and "retry in 0 s" (or a Retry-After of 0) would invite an immediate retry."""
    return max(1, math.ceil(wait))


class RateLimiter:
    """A token bucket per key: ``rate`` requests a second on average, bursts of ``burst``."""

    def __init__(self, rate: float, burst: float, clock: Clock = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def check(self, key: str) -> None:
        """Take one token for ``key``; RateLimited when the bucket is empty."""
        now = self._clock()
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            seconds = retry_seconds((1 - tokens) / self.rate)
            raise RateLimited(f"too many requests: retry in {seconds} s", seconds)
        self._buckets[key] = (tokens - 1, now)
        while len(self._buckets) > MAX_KEYS:
            self._buckets.popitem(last=False)


class Unlimited:
    """The request limiter when the limit is off (``HUB_RATE_LIMIT=0``): never refuses."""

    def check(self, key: str) -> None:
        return None


def request_limiter(rate: float) -> RateLimiter | Unlimited:
    """``rate`` requests a second per key with bursts of twice that; 0 means no limit."""
    if rate == 0:
        return Unlimited()
    return RateLimiter(rate, max(1.0, 2 * rate))


@dataclass
class _Misses:
    count: int
    last: float


class GuessLimiter:
    """Slows down and then locks out a client that keeps asking for things that do not exist.

    The first ``free`` misses cost nothing. After that the client must wait
    ``base_delay * 2**(n - free)`` seconds after its n-th miss before it may ask again,
    whatever the answer would be; from ``lockout_after`` misses on it is refused for
    ``lockout`` seconds. Misses are forgotten ``forget_after`` seconds after the last one.
    Hits never reset the count: a client must not be able to launder guesses with the
    one invoice it really holds. The delay is enforced by refusing, not by sleeping, so
    a guessing client holds no server resources while it waits.
    """

    def __init__(
        self,
        *,
        free: int = 5,
        base_delay: float = 1.0,
        lockout_after: int = 20,
        lockout: float = 24 * 3600.0,
        forget_after: float = 24 * 3600.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.free = free
        self.base_delay = base_delay
        self.lockout_after = lockout_after
        self.lockout = lockout
        self.forget_after = forget_after
        self._clock = clock
        self._misses: OrderedDict[str, _Misses] = OrderedDict()

    def wait_time(self, key: str) -> float:
        """Seconds ``key`` must still wait before its next lookup (0 = may ask now)."""
        entry = self._misses.get(key)
        if entry is None:
            return 0.0
        elapsed = self._clock() - entry.last
        if elapsed >= self._horizon(entry):
            del self._misses[key]
            return 0.0
        if entry.count >= self.lockout_after:
            required = self.lockout
        elif entry.count > self.free:
            required = self.base_delay * 2 ** (entry.count - self.free - 1)
        else:
            return 0.0
        return max(0.0, required - elapsed)

    def _horizon(self, entry: _Misses) -> float:
        return self.lockout if entry.count >= self.lockout_after else self.forget_after

    def check(self, key: str) -> None:
        wait = self.wait_time(key)
        if wait > 0:
            seconds = retry_seconds(wait)
            raise RateLimited(f"too many failed lookups: retry in {seconds} s", seconds)

    def miss(self, key: str) -> None:
        now = self._clock()
        entry = self._misses.pop(key, None)
        if entry is None or now - entry.last >= self._horizon(entry):
            entry = _Misses(0, now)
        entry.count += 1
        entry.last = now
        self._misses[key] = entry
        while len(self._misses) > MAX_KEYS:
            self._misses.popitem(last=False)
