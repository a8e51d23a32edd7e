"""Watching processes that are not our children (a child's child, say)."""

import os
import select


def exited_within(pid: int, seconds: float) -> bool:
    """Whether process ``pid`` ends within ``seconds``: waits on its pidfd, no polling."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], seconds)
        return bool(readable)
    finally:
        os.close(fd)
