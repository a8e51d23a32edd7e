"""Timing, memory and progress helpers shared by the bench workers."""

import random
import resource
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

# Proof timings are the best of this many passes: other work on a small machine only ever
# adds time, so the fastest pass is the closest to the code's own cost.
PASSES = 3


@dataclass(frozen=True)
class Timing:
    """Mean time of `done` calls out of `wanted` (fewer when the time budget ran out)."""

    mean_us: float
    done: int
    wanted: int

    @property
    def capped(self) -> bool:
        return self.done < self.wanted


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Ticker:
    """Progress for a long loop, at most one line every `every` seconds."""

    def __init__(self, label: str, total: int, every: float = 5.0) -> None:
        self.label, self.total, self.every = label, total, every
        self.started = self.last = time.perf_counter()

    def tick(self, done: int) -> None:
        now = time.perf_counter()
        if now - self.last >= self.every or done == self.total:
            self.last = now
            progress(f"    {self.label}: {done:,}/{self.total:,} ({now - self.started:.1f} s)")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def inclusion_requests(size: int, count: int, seed: int = 9162) -> list[int]:
    """Random leaf indexes, the same for every implementation at a given size."""
    rng = random.Random(seed * 1_000_003 + size)
    return [rng.randrange(size) for _ in range(count)]


def consistency_requests(size: int, count: int, seed: int = 6962) -> list[int]:
    """Random old sizes 1..size-1 to prove against `size` (size >= 2)."""
    rng = random.Random(seed * 1_000_003 + size)
    return [rng.randrange(1, size) for _ in range(count)]


def time_calls(call: Callable[[int], Any], args: Sequence[int], budget_s: float) -> Timing:
    """Call `call(a)` for each argument until the budget is spent; the mean per call."""
    done, elapsed = 0, 0.0
    for a in args:
        started = time.perf_counter()
        call(a)
        elapsed += time.perf_counter() - started
        done += 1
        if elapsed >= budget_s:
            break
    return Timing(elapsed / done * 1e6 if done else float("nan"), done, len(args))


def best_of(run_pass: Callable[[], Timing], passes: int = PASSES) -> Timing:
    """The pass with the lowest mean; a pass cut short by its time budget is not repeated."""
    best = run_pass()
    for _ in range(passes - 1):
        if best.capped:
            break
        t = run_pass()
        if t.mean_us < best.mean_us:
            best = t
    return best


async def async_best_of(run_pass: Callable[[], Awaitable[Timing]], passes: int = PASSES) -> Timing:
    best = await run_pass()
    for _ in range(passes - 1):
        if best.capped:
            break
        t = await run_pass()
        if t.mean_us < best.mean_us:
            best = t
    return best


async def time_async_calls(
    call: Callable[[int], Awaitable[Any]], args: Sequence[int], budget_s: float
) -> Timing:
    done, elapsed = 0, 0.0
    for a in args:
        started = time.perf_counter()
        await call(a)
        elapsed += time.perf_counter() - started
        done += 1
        if elapsed >= budget_s:
            break
    return Timing(elapsed / done * 1e6 if done else float("nan"), done, len(args))
