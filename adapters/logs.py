"""The adapter's logs: one JSON object a line on stderr, as the hub writes them."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

from common.jsonlog import JsonFormatter

__all__ = ["json_logs"]


@contextlib.contextmanager
def json_logs(verbose: bool) -> Iterator[None]:
    """Log records as one JSON object a line on stderr, with the hub's JsonFormatter:
    warnings and errors, and with ``-v`` INFO too. Undone on exit (tests run many
    commands in one process)."""
    root = logging.getLogger()
    requests = logging.getLogger("httpx")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    levels = root.level, requests.level
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    # httpx logs every request at INFO with the URL as given, password and all.
    requests.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        requests.setLevel(levels[1])
