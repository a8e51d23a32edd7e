"""The ledger in the database: tiles, entry bundles and signed checkpoints.

Writes happen inside the integrating transaction handed in by the sequencer (its `Sql`);
reads take a `Reader` (hub.store.reader), the storage driver that knows its dialect, and
serve proofs from at most one stored tile per tile level, so a proof costs O(log n)
hashes read in one query and never rehashes leaves.
"""

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from hub.errors import LedgerCorrupt
from hub.ledger.checkpoint import Checkpoint, format_checkpoint
from hub.ledger.layout import BUNDLE_SIZE, decode_bundle, encode_bundle
from hub.ledger.note import Signer, sign_note
from hub.ledger.tiles import (
    TILE_HEIGHT,
    NodeId,
    append_leaves,
    consistency_ranges,
    edge_tiles,
    inclusion_ranges,
    level_offsets,
    range_hash,
    split_tile_key,
    subtrees,
    tile_key,
    tile_need,
)
from hub.ledger.tree import EMPTY_ROOT, HASH_SIZE, leaf_hash, node_hash
from hub.store.ledger import (  # noqa: F401  (re-exported: the ledger keeps its names)
    SignedHead,
    insert_checkpoint,
    lock_ledger,
    read_checkpoint,
)
from hub.store.reader import Reader, tiles_query
from hub.store.sql import Sql

TileMap = dict[tuple[int, int], tuple[int, bytes]]


def _tile_map(rows: Iterable[Sequence[Any]]) -> TileMap:
    return {split_tile_key(int(k)): (int(w), bytes(h)) for k, w, h in rows}


async def fetch_tiles(sql: Sql, wanted: Iterable[tuple[int, int]]) -> TileMap:
    """The stored tiles among `wanted`, read in the integrating transaction."""
    keys = [tile_key(level, index) for level, index in wanted]
    return _tile_map(await sql.fetch(tiles_query(len(keys)), keys)) if keys else {}


async def append_entries(
    sql: Sql, size: int, entries: Sequence[bytes], hashes: Sequence[bytes] | None = None
) -> tuple[int, bytes, list[bytes]]:
    """Append leaves to a tree of `size`: write tiles and bundles, return (size, root, hashes).

    `hashes`, when given, are the entries' leaf hashes, computed by the caller beforehand.
    """
    edges = edge_tiles(size)
    stored = await fetch_tiles(sql, [(level, index) for level, index, _ in edges])
    for level, index, width in edges:
        got = stored.get((level, index))
        if got is None or got[0] != width:
            raise LedgerCorrupt(
                f"ledger_tiles row id={tile_key(level, index)} (tile {level}/{index}) "
                f"should have width {width} at tree size {size}"
            )
    if hashes is None:
        hashes = [leaf_hash(e) for e in entries]
    elif len(hashes) != len(entries):
        raise ValueError("append_entries: one leaf hash per entry")
    written = append_leaves(size, {k: blob for k, (_, blob) in stored.items()}, hashes)
    await sql.execute_many(
        "INSERT INTO ledger_tiles (id, width, hashes) VALUES (?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET width = excluded.width, hashes = excluded.hashes",
        [(tile_key(t.level, t.index), t.width, t.blob) for t in written],
    )
    await _append_bundles(sql, size, entries)
    new_size = size + len(entries)
    current: TileMap = dict(stored)
    current.update({(t.level, t.index): (t.width, t.blob) for t in written})
    return new_size, root_from_tiles(new_size, current), list(hashes)


async def _append_bundles(sql: Sql, size: int, entries: Sequence[bytes]) -> None:
    first = size // BUNDLE_SIZE
    rows: list[bytes] = []
    if size % BUNDLE_SIZE:
        found = await sql.fetch("SELECT width, data FROM ledger_bundles WHERE id = ?", [first])
        if not found or int(found[0][0]) != size % BUNDLE_SIZE:
            raise LedgerCorrupt(
                f"ledger_bundles row id={first} should hold {size % BUNDLE_SIZE} entries"
            )
        rows = decode_bundle(bytes(found[0][1]))
    rows.extend(entries)
    await sql.execute_many(
        "INSERT INTO ledger_bundles (id, width, data) VALUES (?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET width = excluded.width, data = excluded.data",
        [
            (first + n, len(chunk), encode_bundle(chunk))
            for n, chunk in enumerate(
                rows[i : i + BUNDLE_SIZE] for i in range(0, len(rows), BUNDLE_SIZE)
            )
        ],
    )


def root_from_tiles(size: int, tiles: Mapping[tuple[int, int], tuple[int, bytes]]) -> bytes:
    """Root of a tree of `size` from tiles holding its right edge (see tiles.edge_tiles)."""
    if size == 0:
        return EMPTY_ROOT
    return range_hash(0, size, lambda node: _node(tiles, node))


def _node(tiles: Mapping[tuple[int, int], tuple[int, bytes]], node: NodeId) -> bytes:
    # On every proof's hot path, so the tile arithmetic is inline; corruption is named.
    level, index = node
    k = level & (TILE_HEIGHT - 1)
    shift = TILE_HEIGHT - k
    key = (level >> 3, index >> shift)
    found = tiles.get(key)
    if found is None:
        raise LedgerCorrupt(f"tile {key[0]}/{key[1]} holding node {node} is missing")
    width, blob = found
    position = index & ((1 << shift) - 1)
    if position >= width >> k:
        raise LedgerCorrupt(f"tile {key[0]}/{key[1]} is too narrow for node {node}")
    start = (level_offsets(width)[k] + position) * HASH_SIZE
    return blob[start : start + HASH_SIZE]


async def store_checkpoint(
    sql: Sql, signer: Signer, origin: str, size: int, root: bytes
) -> SignedHead:
    note = sign_note(format_checkpoint(Checkpoint(origin, size, root)), signer)
    head = SignedHead(size, root, note)
    await insert_checkpoint(sql, head, datetime.now(UTC))
    return head


def _range_nodes(begin: int, end: int) -> Sequence[NodeId]:
    # Most proof ranges are one aligned complete subtree: skip the decomposition for them,
    # so the memoised one keeps only the few right-edge ranges.
    count = end - begin
    if count & (count - 1) == 0 and begin & (count - 1) == 0:
        level = count.bit_length() - 1
        return ((level, begin >> level),)
    return subtrees(begin, end)


class TileReader:
    """Reads tiles for proofs, keeping recently read tiles in a bounded LRU.

    A cached tile answers for any node it holds: complete nodes never change, so a tile
    read at width W serves every later proof that needs no more than W bottom nodes.
    """

    def __init__(self, reader: Reader, cache_tiles: int = 4096) -> None:
        self.reader = reader
        self.cache_tiles = cache_tiles
        self._cache: OrderedDict[tuple[int, int], tuple[int, bytes]] = OrderedDict()

    async def tiles(self, need: Mapping[tuple[int, int], int]) -> TileMap:
        """Tiles holding at least `need[tile]` bottom nodes, from the cache or the database."""
        found: TileMap = {}
        missing = []
        for key, width in need.items():
            cached = self._cache.get(key)
            if cached is None or cached[0] < width:
                missing.append(key)
            else:
                self._cache.move_to_end(key)
                found[key] = cached
        if missing:
            fetched = await self._fetch(missing)
            found.update(fetched)
            if self.cache_tiles:
                self._cache.update(fetched)
                while len(self._cache) > self.cache_tiles:
                    self._cache.popitem(last=False)
        return found

    async def _fetch(self, wanted: list[tuple[int, int]]) -> TileMap:
        keys = [tile_key(level, index) for level, index in wanted]
        return _tile_map(await self.reader.fetch_tiles(keys))

    async def _hashes(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        groups = [_range_nodes(begin, end) for begin, end in ranges]
        need: dict[tuple[int, int], int] = {}
        for nodes in groups:
            for node in nodes:
                tile, width = tile_need(node)
                if need.get(tile, 0) < width:
                    need[tile] = width
        tiles = await self.tiles(need)
        hashes = []
        for nodes in groups:
            acc = _node(tiles, nodes[-1])
            for node in reversed(nodes[:-1]):
                acc = node_hash(_node(tiles, node), acc)
            hashes.append(acc)
        return hashes

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return await self._hashes(inclusion_ranges(index, size))

    async def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        return await self._hashes(consistency_ranges(old_size, new_size))

    async def leaf_hash(self, index: int) -> bytes:
        tiles = await self.tiles(dict([tile_need((0, index))]))
        return _node(tiles, (0, index))


async def read_leaf_data(reader: Reader, index: int) -> bytes:
    rows = await reader.fetch(
        "SELECT data FROM ledger_bundles WHERE id = ?", [index // BUNDLE_SIZE]
    )
    if not rows:
        raise LookupError(f"no leaf {index}")
    entries = decode_bundle(bytes(rows[0][0]))
    if index % BUNDLE_SIZE >= len(entries):
        raise LookupError(f"no leaf {index}")
    return entries[index % BUNDLE_SIZE]


async def read_tile(reader: Reader, level: int, index: int) -> tuple[int, bytes] | None:
    rows = await reader.fetch_tiles([tile_key(level, index)])
    return (int(rows[0][1]), bytes(rows[0][2])) if rows else None


async def read_bundle(reader: Reader, index: int) -> tuple[int, bytes] | None:
    rows = await reader.fetch("SELECT width, data FROM ledger_bundles WHERE id = ?", [index])
    return (int(rows[0][0]), bytes(rows[0][1])) if rows else None
