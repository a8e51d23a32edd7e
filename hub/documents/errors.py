"""The one error the document core raises, and how it names a field."""

from __future__ import annotations

import json
import re

from hub.errors import BadInput

__all__ = ["BadDocument", "child_path", "index_path"]

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Keys are echoed in paths; cap them so a hostile key cannot flood a message.
_MAX_KEY_ECHO = 40


class BadDocument(BadInput, ValueError):
    """A document (or leaf input) breaks a rule.

    ``field`` is a dotted path such as ``body.items[2].amount``. The message is
    ``"<field>: <problem>"`` and never carries personal values (names, ids, codes);
    only non-personal values such as amounts or category keys may appear in it.
    """

    code = "BAD_INPUT"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def child_path(parent: str, key: str) -> str:
    """``parent.key``, or ``parent["key"]`` when the key is not a plain identifier."""
    if _PLAIN_KEY.fullmatch(key):
        return f"{parent}.{key}" if parent else key
    shown = key if len(key) <= _MAX_KEY_ECHO else key[:_MAX_KEY_ECHO] + "…"
    return f"{parent}[{json.dumps(shown, ensure_ascii=True)}]"


def index_path(parent: str, index: int) -> str:
    return f"{parent}[{index}]"
