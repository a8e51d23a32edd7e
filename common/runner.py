"""Running a command's coroutine on the fastest event loop installed."""

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # Windows, or a slimmed install: the standard loop works the same
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, on uvloop when it is installed.

    `hub serve` starts uvicorn from inside a running loop, so uvicorn's own ``loop="auto"``
    never applies; without this the server and the adapters run on the selector loop,
    which spends ~2x the CPU per socket event.
    """
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(main)
