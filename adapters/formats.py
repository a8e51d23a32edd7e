"""What every format's mapping shares: money and quantity text, category labels, the
``supersedes`` version number, and clipping problem texts.

One bill gives one body whatever the channel: money is written with exactly 2 decimals
(``25`` -> ``25.00``), quantities without trailing zeros (``1.50`` -> ``1.5``), and text
with more than 2 significant decimals is handed on as it is, for the invoice rules to
refuse in their words: nothing is rounded.
"""

from __future__ import annotations

import re

from hub.documents.invoice import CATEGORIES

__all__ = [
    "MAX_VERSION",
    "category_key",
    "clip",
    "mask_id",
    "money_text",
    "number_text",
    "quantity_text",
    "version_number",
]

# A version is an Int in GraphQL (DocumentInput.supersedes): 32 bits, signed.
MAX_VERSION = 2**31 - 1
# An NM: optional sign, digits, optional fraction (HL7 allows ``+01.50`` and ``.5``).
_NM = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?")
_CATEGORY_BY_LABEL = {label: key for key, label in CATEGORIES.items()}


def number_text(text: str, places: int) -> str:
    """``text`` with ``places`` decimals (money 2, quantities 0) when nothing is lost.

    A leading ``+`` and leading zeros go. Text that is no number, or has more than 2
    significant decimals, is returned as it is.
    """
    match = _NM.fullmatch(text)
    if match is None or not (match[2] or match[3]):
        return text
    whole = match[2].lstrip("0") or "0"
    fraction = (match[3] or "").rstrip("0")
    if len(fraction) > 2:
        return text
    sign = "-" if match[1] == "-" else ""
    fraction = fraction.ljust(places, "0")
    return f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}"


def money_text(text: str) -> str:
    """Money as every adapter writes it: exactly 2 decimals."""
    return number_text(text, 2)


def quantity_text(text: str) -> str:
    """A quantity as every adapter writes it: no trailing zeros."""
    return number_text(text, 0)


def category_key(label: str) -> str:
    """The category key for a key or its Chinese name (``化验费`` -> ``laboratory``);
    anything else as it is, for the invoice rules to refuse."""
    return _CATEGORY_BY_LABEL.get(label, label)


def version_number(text: str) -> int | None:
    """The version a correction or reversal supersedes, from its text; None when the
    text is no version number (1 to MAX_VERSION)."""
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    version = int(text)
    return version if 1 <= version <= MAX_VERSION else None


def mask_id(value: str) -> str:
    """A resident id as the hub may hold it: a full one (no ``*``) keeps its first 3 and
    last 4 characters, the rest masked (``460***********1234``, DESIGN.md's sample);
    short ids keep less. An id that is masked already, or empty, is returned as is."""
    if not value or "*" in value:
        return value
    head = 3 if len(value) >= 11 else 0
    tail = 4 if len(value) >= 8 else max(0, min(2, len(value) - 2))
    return value[:head] + "*" * (len(value) - head - tail) + value[len(value) - tail :]


def clip(text: str, limit: int, mark: str = "…") -> str:
    """``text`` cut to ``limit`` characters, the cut shown by ``mark``."""
    return text if len(text) <= limit else text[: limit - len(mark)] + mark
