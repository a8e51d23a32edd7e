"""Running a command's coroutine on the fastest event loop installed (common.runner)."""

from common.runner import run

__all__ = ["run"]
