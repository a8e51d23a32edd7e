"""C2SP tlog-tiles wire layout: tile and entry-bundle paths, the bundle codec, index bounds.

Paths (https://c2sp.org/tlog-tiles), relative to the log's prefix::

    tile/<L>/<N>[.p/<W>]        L: 0..63 decimal, no leading zeros
    tile/entries/<N>[.p/<W>]    N: 3-digit groups, all but the last prefixed with "x"
                                W: 1..255, no leading zeros (partial tiles only)

Only the canonical spelling of an index parses (``x001/234``, never ``x000/001/234`` or
``001``), so each resource has exactly one URL. An entry bundle is its entries in order,
each as a big-endian uint16 length then the entry's bytes. Pure: no I/O.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "BUNDLE_SIZE",
    "INDEX_BITS",
    "MAX_ENTRY_BYTES",
    "MAX_TILE_INDEX",
    "MAX_TILE_LEVEL",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TilePath",
    "decode_bundle",
    "encode_bundle",
    "format_index",
    "parse_tile_index",
    "parse_tile_path",
    "split_tile_key",
    "tile_key",
    "tile_path",
]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
BUNDLE_SIZE = TILE_WIDTH
MAX_ENTRY_BYTES = 0xFFFF  # what a uint16 length prefix can say
# A tree has fewer than 2**64 leaves, so it has no tile above level 7 and fewer than 2**48
# tiles at level 1 and above; the stored tile key packs (level, index) with the index in
# INDEX_BITS bits. A level-0 index above MAX_TILE_INDEX would alias another level's tile.
INDEX_BITS = 48
MAX_TILE_INDEX = (1 << INDEX_BITS) - 1
MAX_TILE_LEVEL = 7

# ASCII digits only: \d would admit other scripts' digits, and int() reads them.
_GROUP = re.compile(r"x[0-9]{3}")
_LAST = re.compile(r"[0-9]{3}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class TilePath:
    """A parsed tile path: ``level`` is None for an entry bundle; ``width`` None when full."""

    level: int | None
    index: int
    width: int | None = None


def tile_key(level: int, index: int) -> int:
    """One integer for (level, index), so a proof's tiles are one ``IN (...)`` read."""
    if not (0 <= level <= MAX_TILE_LEVEL and 0 <= index <= MAX_TILE_INDEX):
        raise ValueError(f"tile {level}/{index} is outside the tile key's range")
    return (level << INDEX_BITS) | index


def split_tile_key(key: int) -> tuple[int, int]:
    return key >> INDEX_BITS, key & MAX_TILE_INDEX


def format_index(index: int) -> str:
    """``1234067`` -> ``x001/x234/067``: 3-digit groups, all but the last with an ``x``."""
    if index < 0:
        raise ValueError("a tile index is not negative")
    digits = str(index)
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([*("x" + g for g in groups[:-1]), groups[-1]])


def tile_path(level: int | None, index: int, width: int | None = None) -> str:
    """``tile/<L>/<N>[.p/<W>]``, or ``tile/entries/<N>[.p/<W>]`` when ``level`` is None."""
    if width is not None and not 0 < width < TILE_WIDTH:
        raise ValueError(f"a partial tile's width is 1..{TILE_WIDTH - 1}, not {width}")
    head = "tile/entries" if level is None else f"tile/{level}"
    tail = "" if width is None else f".p/{width}"
    return f"{head}/{format_index(index)}{tail}"


def parse_tile_index(path: str) -> tuple[int, int | None]:
    """``x001/x234/067[.p/W]`` -> (1234067, W or None); ValueError unless canonical."""
    parts = path.split("/")
    width = None
    if len(parts) >= 2 and parts[-2].endswith(".p"):
        if not _DECIMAL.fullmatch(parts[-1]):
            raise ValueError("bad partial width")
        width = int(parts[-1])
        if not 0 < width < TILE_WIDTH:
            raise ValueError("partial width out of range")
        parts = [*parts[:-2], parts[-2][:-2]]
    if (
        not parts
        or not _LAST.fullmatch(parts[-1])
        or not all(_GROUP.fullmatch(p) for p in parts[:-1])
    ):
        raise ValueError("bad tile index")
    if len(parts) > 1 and parts[0] == "x000":
        raise ValueError("tile index has a leading x000 group")
    return int("".join(p.lstrip("x") for p in parts)), width


def parse_tile_path(path: str) -> TilePath:
    """Parse what follows ``<prefix>/tile/``: ``<L>/<N>...`` or ``entries/<N>...``.

    ValueError for anything but the canonical spelling, or a level or index this log
    cannot have (past ``MAX_TILE_LEVEL`` / ``MAX_TILE_INDEX``).
    """
    head, sep, rest = path.partition("/")
    if not sep:
        raise ValueError("tile path needs a level and an index")
    if head == "entries":
        level = None
    elif _DECIMAL.fullmatch(head) and len(head) <= 2:
        level = int(head)
        if level > MAX_TILE_LEVEL:
            raise ValueError(f"no tile level above {MAX_TILE_LEVEL}")
    else:
        raise ValueError("tile level must be a decimal without leading zeros")
    index, width = parse_tile_index(rest)
    if index > MAX_TILE_INDEX:
        raise ValueError("tile index out of range")
    return TilePath(level, index, width)


def encode_bundle(entries: Iterable[bytes]) -> bytes:
    """An entry bundle: each entry as a big-endian uint16 length, then its bytes."""
    out = []
    for entry in entries:
        if len(entry) > MAX_ENTRY_BYTES:
            raise ValueError(f"an entry is at most {MAX_ENTRY_BYTES} bytes, got {len(entry)}")
        out.append(len(entry).to_bytes(2, "big") + entry)
    return b"".join(out)


def decode_bundle(data: bytes) -> list[bytes]:
    """The entries of a bundle; ValueError when it ends inside a length or an entry."""
    entries, at = [], 0
    while at < len(data):
        if at + 2 > len(data):
            raise ValueError("entry bundle ends inside a length prefix")
        length = int.from_bytes(data[at : at + 2], "big")
        at += 2
        if at + length > len(data):
            raise ValueError("entry bundle ends inside an entry")
        entries.append(data[at : at + length])
        at += length
    return entries
