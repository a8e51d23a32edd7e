"""Tile layout (C2SP tlog-tiles, height 8) and the plans that turn proofs into node reads.

A stored tile keeps every complete node of its 8 levels, not only the bottom row the
tlog-tiles protocol serves: the bottom row is a slice of it, and a proof then reads at
most one row per tile level instead of rehashing up to 255 nodes per tile.

Node (level, index) covers leaves [index << level, (index + 1) << level). Tile (L, N) holds
the nodes of levels 8L .. 8L+7 whose bottom-row descendants are nodes N*256 .. N*256+255 of
level 8L; its width W is how many of those bottom nodes exist. Pure: no I/O.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

# The layout owns these; re-exported because the tile math is where callers look for them.
from hub.ledger.layout import TILE_HEIGHT as TILE_HEIGHT
from hub.ledger.layout import TILE_WIDTH as TILE_WIDTH
from hub.ledger.layout import split_tile_key as split_tile_key
from hub.ledger.layout import tile_key as tile_key
from hub.ledger.tree import HASH_SIZE, complete_subtrees, node_hash, split_point

NodeId = tuple[int, int]
LeafRange = tuple[int, int]


@lru_cache(maxsize=TILE_WIDTH + 1)
def level_offsets(width: int) -> tuple[int, ...]:
    """Start (in hashes) of each of the 8 levels inside a tile blob of bottom width `width`."""
    offsets, total = [], 0
    for k in range(TILE_HEIGHT):
        offsets.append(total)
        total += width >> k
    offsets.append(total)
    return tuple(offsets)


# Proofs decompose the same few right-edge ranges again and again; profiling showed this
# decomposition, not the database read, dominating a proof's time.
subtrees = lru_cache(maxsize=4096)(complete_subtrees)


def tile_hash_count(width: int) -> int:
    return level_offsets(width)[TILE_HEIGHT]


def build_tile(bottom: Sequence[bytes]) -> bytes:
    """The blob of a tile: its bottom row and every complete node above it, level by level."""
    width = len(bottom)
    if not 0 < width <= TILE_WIDTH:
        raise ValueError(f"tile width must be 1..{TILE_WIDTH}, got {width}")
    parts = [b"".join(bottom)]
    row = list(bottom)
    for _ in range(1, TILE_HEIGHT):
        row = list(map(node_hash, row[0:-1:2], row[1::2]))
        if not row:
            break
        parts.append(b"".join(row))
    return b"".join(parts)


def tile_root(blob: bytes) -> bytes:
    """The node one level above a full tile (it enters the bottom row of the tile above)."""
    if len(blob) != tile_hash_count(TILE_WIDTH) * HASH_SIZE:
        raise ValueError("only a full tile has a root")
    top = level_offsets(TILE_WIDTH)[TILE_HEIGHT - 1] * HASH_SIZE
    return node_hash(blob[top : top + HASH_SIZE], blob[top + HASH_SIZE : top + 2 * HASH_SIZE])


def bottom_row(blob: bytes, width: int) -> list[bytes]:
    return [blob[i * HASH_SIZE : (i + 1) * HASH_SIZE] for i in range(width)]


def tile_need(node: NodeId) -> tuple[tuple[int, int], int]:
    """The tile storing `node`, and the bottom width that tile must have to hold it."""
    level, index = node
    k = level & (TILE_HEIGHT - 1)
    shift = TILE_HEIGHT - k
    position = index & ((1 << shift) - 1)
    return (level >> 3, index >> shift), (position + 1) << k


def edge_tiles(size: int) -> list[tuple[int, int, int]]:
    """The partial tiles (L, N, width) at the right edge of a tree of `size` leaves."""
    edges = []
    level, count = 0, size
    while count:
        width = count % TILE_WIDTH
        if width:
            edges.append((level, count // TILE_WIDTH, width))
        level, count = level + 1, count // TILE_WIDTH
    return edges


@dataclass(frozen=True)
class StoredTile:
    level: int
    index: int
    width: int
    blob: bytes


def append_leaves(
    size: int, edges: Mapping[tuple[int, int], bytes], leaf_hashes: Sequence[bytes]
) -> list[StoredTile]:
    """Tiles to write after appending `leaf_hashes` to a tree of `size` leaves.

    `edges` maps (L, N) to the blob of each partial edge tile of the current tree
    (see `edge_tiles`). Only the tiles that change are returned.
    """
    written: list[StoredTile] = []
    carried = list(leaf_hashes)
    level, count = 0, size
    while carried:
        first = count // TILE_WIDTH
        width = count % TILE_WIDTH
        row = bottom_row(edges[(level, first)], width) if width else []
        row.extend(carried)
        carried = []
        for n, start in enumerate(range(0, len(row), TILE_WIDTH)):
            chunk = row[start : start + TILE_WIDTH]
            blob = build_tile(chunk)
            written.append(StoredTile(level, first + n, len(chunk), blob))
            if len(chunk) == TILE_WIDTH:
                carried.append(tile_root(blob))
        level, count = level + 1, count // TILE_WIDTH
    return written


def _subproof_ranges(m: int, begin: int, end: int, complete: bool) -> list[LeafRange]:
    # RFC 9162 2.1.4.1 SUBPROOF over leaves [begin, end), with absolute offsets.
    n = end - begin
    if m == n:
        return [] if complete else [(begin, end)]
    k = split_point(n)
    if m <= k:
        return [*_subproof_ranges(m, begin, begin + k, complete), (begin + k, end)]
    return [*_subproof_ranges(m - k, begin + k, end, False), (begin, begin + k)]


def inclusion_ranges(index: int, size: int) -> list[LeafRange]:
    """The leaf ranges whose subtree hashes form RFC 9162 PATH(index, D[size]), in order."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} is outside a tree of size {size}")
    ranges: list[LeafRange] = []
    begin, end = 0, size
    while end - begin > 1:
        k = split_point(end - begin)
        if index < begin + k:
            ranges.append((begin + k, end))
            end = begin + k
        else:
            ranges.append((begin, begin + k))
            begin += k
    ranges.reverse()
    return ranges


def consistency_ranges(old_size: int, new_size: int) -> list[LeafRange]:
    """The leaf ranges whose subtree hashes form RFC 9162 PROOF(old_size, D[new_size])."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    return _subproof_ranges(old_size, 0, new_size, True)


def range_hash(begin: int, end: int, node: Callable[[NodeId], bytes]) -> bytes:
    """MTH of leaves [begin, end) from stored complete nodes, folding right to left."""
    parts = subtrees(begin, end)
    acc = node(parts[-1])
    for part in reversed(parts[:-1]):
        acc = node_hash(node(part), acc)
    return acc
