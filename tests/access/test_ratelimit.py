"""Request limits: token buckets per principal and the slow-down, then lockout, of guesses."""

import pytest

from hub.access.ratelimit import GuessLimiter, RateLimiter
from hub.errors import RateLimited


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_bursts_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=4, clock=clock)
    for _ in range(4):
        limiter.check("a")
    with pytest.raises(RateLimited):
        limiter.check("a")
    limiter.check("b")  # keys are independent
    clock.now += 0.5  # one token back
    limiter.check("a")
    with pytest.raises(RateLimited):
        limiter.check("a")


def test_guess_limiter_escalates_and_locks_out() -> None:
    clock = Clock()
    g = GuessLimiter(
        free=2, base_delay=1, lockout_after=5, lockout=100, forget_after=50, clock=clock
    )
    for _ in range(2):
        g.check("ip")
        g.miss("ip")
    assert g.wait_time("ip") == 0
    g.miss("ip")  # 3 misses: wait 1 s
    assert g.wait_time("ip") == 1
    with pytest.raises(RateLimited):
        g.check("ip")
    clock.now += 1
    g.check("ip")
    g.miss("ip")  # 4 misses: wait 2 s
    assert g.wait_time("ip") == 2
    clock.now += 2
    g.miss("ip")  # 5 misses: locked out for 100 s
    assert g.wait_time("ip") == 100
    clock.now += 99
    with pytest.raises(RateLimited):
        g.check("ip")
    clock.now += 1
    g.check("ip")
    assert g.wait_time("other") == 0


def test_guess_limiter_forgets_old_misses() -> None:
    clock = Clock()
    g = GuessLimiter(free=1, base_delay=1, lockout_after=10, forget_after=50, clock=clock)
    for _ in range(4):
        clock.now += 10
        g.miss("ip")
    assert g.wait_time("ip") > 0
    clock.now += 50
    assert g.wait_time("ip") == 0
    g.miss("ip")
    assert g.wait_time("ip") == 0  # counting starts again


def test_refusals_say_whole_seconds_to_wait() -> None:
    # Rounded up, never to 0: a client that waits what it is told gets in.
    clock = Clock()
    limiter = RateLimiter(rate=100, burst=1, clock=clock)
    limiter.check("a")
    with pytest.raises(RateLimited) as refused:
        limiter.check("a")  # 10 ms to the next token
    assert refused.value.retry_after == 1
    assert refused.value.message == "too many requests: retry in 1 s"
    g = GuessLimiter(free=0, base_delay=2.5, clock=clock)
    g.miss("ip")
    clock.now += 0.1
    with pytest.raises(RateLimited) as refused:
        g.check("ip")  # 2.4 s to wait
    assert refused.value.retry_after == 3
    assert refused.value.message == "too many failed lookups: retry in 3 s"
