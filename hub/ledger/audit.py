"""`hub ledger verify`: recompute every stored tile and checkpoint from the leaves.

The database is not trusted: leaves are read from the entry bundles, hashed and folded into
tiles again, and each stored tile and checkpoint (root and signature) is compared with what
it must be; each `RowCheck` the caller passes compares a table whose rows stand for leaves
with the leaves as they stream past (the tables are their owners' business: see
hub.audit). The first row that differs is named. Memory holds only the right edge of the
tree and one page of rows at a time.
"""

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.errors import LedgerCorrupt
from hub.ledger.checkpoint import open_checkpoint
from hub.ledger.note import NoteError, Verifier
from hub.ledger.storage import BUNDLE_SIZE, decode_bundle, root_from_tiles
from hub.ledger.tiles import (
    TILE_WIDTH,
    StoredTile,
    append_leaves,
    bottom_row,
    build_tile,
    edge_tiles,
    tile_hash_count,
    tile_key,
)
from hub.ledger.tree import HASH_SIZE, leaf_hash
from hub.store.db import Database

PAGE_BUNDLES = 64
PAGE_ROWS = 2000


@dataclass(frozen=True)
class AuditReport:
    size: int
    checkpoints: int
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows checked

    @property
    def documents(self) -> int:
        return self.rows.get("documents", 0)

    @property
    def governance(self) -> int:
        """Rows of the governance tables (access, grants, types, claims) checked against leaves."""
        return sum(n for table, n in self.rows.items() if table != "documents")


@dataclass(frozen=True)
class _Bundle:
    id: int
    width: int
    data: bytes
    # The level-0 tile over the same leaves (tile key (0, N) == N), if stored.
    tile: tuple[int, bytes] | None


async def _bundles(db: Database) -> AsyncIterator[_Bundle]:
    after = -1
    while True:
        rows = await db.sql.fetch(
            "SELECT b.id, b.width, b.data, t.width, t.hashes FROM ledger_bundles b"
            " LEFT JOIN ledger_tiles t ON t.id = b.id WHERE b.id > ? ORDER BY b.id LIMIT ?",
            [after, PAGE_BUNDLES],
        )
        for bundle_id, width, data, tile_width, hashes in rows:
            tile = None if tile_width is None else (int(tile_width), bytes(hashes))
            yield _Bundle(int(bundle_id), int(width), bytes(data), tile)
        if len(rows) < PAGE_BUNDLES:
            return
        after = int(rows[-1][0])


def _check_leaf_hashes(bundle: _Bundle, hashes: list[bytes]) -> None:
    """Tell a tampered leaf from a tampered tile before anything derived from them is checked.

    A leaf whose hash differs from the one its level-0 tile stores is blamed on the bundle
    only if that tile is intact (its upper nodes still fold from its bottom row); otherwise
    the tile row is the one that changed.
    """
    tile_name = f"ledger_tiles row id={tile_key(0, bundle.id)} (tile 0/{bundle.id})"
    if bundle.tile is None:
        raise LedgerCorrupt(f"{tile_name} is missing")
    width, blob = bundle.tile
    if width != len(hashes) or len(blob) != tile_hash_count(width) * HASH_SIZE:
        raise LedgerCorrupt(f"{tile_name} does not match the leaves")
    stored = bottom_row(blob, width)
    if stored == hashes:
        return
    if build_tile(stored) != blob:
        raise LedgerCorrupt(f"{tile_name} does not match the leaves")
    i = next(i for i, (a, b) in enumerate(zip(stored, hashes, strict=True)) if a != b)
    raise LedgerCorrupt(
        f"ledger_bundles row id={bundle.id} (leaf {bundle.id * BUNDLE_SIZE + i})"
        f" does not hash to the leaf hash stored in {tile_name}"
    )


async def _checkpoints(db: Database) -> list[tuple[int, bytes, str]]:
    # Checkpoints are few compared with leaves (one per commit); size, root and note only.
    rows = await db.sql.fetch("SELECT size, root, note FROM ledger_checkpoints ORDER BY size")
    return [(int(s), bytes(r), n) for s, r, n in rows]


async def verify_ledger(
    db: Database,
    verifier: Verifier,
    origin: str,
    progress: Callable[[int, int], None] | None = None,
    checks: Sequence["RowCheck"] = (),
) -> AuditReport:
    """Raise LedgerCorrupt naming the first bad row; return what was checked otherwise."""
    checkpoints = await _checkpoints(db)
    if not checkpoints:
        raise LedgerCorrupt("ledger_checkpoints is empty: the log has never been initialised")
    total = checkpoints[-1][0]
    pending = list(checkpoints)
    edges: dict[tuple[int, int], bytes] = {}
    widths: dict[tuple[int, int], int] = {}
    size = 0

    async def check_tile(tile: StoredTile) -> None:
        rows = await db.sql.fetch(
            "SELECT width, hashes FROM ledger_tiles WHERE id = ?",
            [tile_key(tile.level, tile.index)],
        )
        if not rows or int(rows[0][0]) != tile.width or bytes(rows[0][1]) != tile.blob:
            raise LedgerCorrupt(
                f"ledger_tiles row id={tile_key(tile.level, tile.index)} "
                f"(tile {tile.level}/{tile.index}) does not match the leaves"
            )

    def check_checkpoint(cp_size: int, root: bytes, note: str) -> None:
        tiles = {k: (widths[k], edges[k]) for k in edges}
        if root_from_tiles(cp_size, tiles) != root:
            raise LedgerCorrupt(
                f"ledger_checkpoints row size={cp_size}: root does not match the leaves"
            )
        try:
            cp = open_checkpoint(note, verifier, origin)
        except NoteError as exc:
            raise LedgerCorrupt(
                f"ledger_checkpoints row size={cp_size}: note does not verify ({exc})"
            ) from None
        if cp.size != cp_size or cp.root != root:
            raise LedgerCorrupt(
                f"ledger_checkpoints row size={cp_size}: signed note is for another tree"
            )

    async def feed(hashes: list[bytes]) -> None:
        nonlocal size
        while hashes:
            if pending and pending[0][0] == size:
                check_checkpoint(*pending.pop(0))
                continue
            limit = pending[0][0] - size if pending else len(hashes)
            if limit <= 0:
                raise LedgerCorrupt(f"ledger_checkpoints row size={pending[0][0]} is out of order")
            chunk, hashes = hashes[:limit], hashes[limit:]
            for tile in append_leaves(size, edges, chunk):
                key = (tile.level, tile.index)
                if tile.width == TILE_WIDTH:
                    await check_tile(tile)
                    edges.pop(key, None)
                    widths.pop(key, None)
                else:
                    edges[key], widths[key] = tile.blob, tile.width
            size += len(chunk)

    expected_bundle = 0
    async for bundle in _bundles(db):
        bundle_id, width = bundle.id, bundle.width
        if bundle_id != expected_bundle:
            raise LedgerCorrupt(f"ledger_bundles row id={expected_bundle} is missing")
        try:
            entries = decode_bundle(bundle.data)
        except ValueError as exc:
            raise LedgerCorrupt(f"ledger_bundles row id={bundle_id}: {exc}") from None
        if len(entries) != width or (
            width != BUNDLE_SIZE and bundle_id * BUNDLE_SIZE + width != total
        ):
            raise LedgerCorrupt(f"ledger_bundles row id={bundle_id}: wrong number of entries")
        hashes = [leaf_hash(e) for e in entries]
        _check_leaf_hashes(bundle, hashes)
        for check in checks:
            await check.check_leaves(bundle_id * BUNDLE_SIZE, entries)
        await feed(hashes)
        expected_bundle += 1
        if progress:
            progress(size, total)
    while pending and pending[0][0] == size:
        check_checkpoint(*pending.pop(0))
    if pending:
        raise LedgerCorrupt(
            f"ledger_checkpoints row size={pending[0][0]} covers leaves that are not stored"
        )
    for level, index, width in edge_tiles(size):
        await check_tile(StoredTile(level, index, width, edges[(level, index)]))
    extra = await db.sql.fetch("SELECT COUNT(*) FROM ledger_tiles", [])
    expected_tiles = _tile_count(size)
    if int(extra[0][0]) != expected_tiles:
        raise LedgerCorrupt(
            f"ledger_tiles holds {int(extra[0][0])} rows, a tree of {size} has {expected_tiles}"
        )
    for check in checks:
        await check.finish()
    rows: dict[str, int] = {}
    for check in checks:  # a table may have several checks (a claim row stands for two leaves)
        rows[check.table] = rows.get(check.table, 0) + check.count
    return AuditReport(size, len(checkpoints), rows)


def _tile_count(size: int) -> int:
    count, nodes = 0, size
    while nodes:
        count += -(-nodes // TILE_WIDTH)
        nodes //= TILE_WIDTH
    return count


Row = tuple[Any, ...]


class RowCheck:
    """Merge-joins one table's rows (by leaf index) with the leaves as they stream past.

    `query` selects the row id first and the leaf index second, takes the last leaf index
    seen and a page size as parameters, and orders by leaf index. `expect` rebuilds the
    leaf data a row stands for; `problem` names anything else wrong with the row.
    """

    def __init__(
        self,
        db: Database,
        table: str,
        query: str,
        expect: Callable[[Row], bytes],
        problem: Callable[[Row], str | None] = lambda row: None,
    ) -> None:
        self.db = db
        self.table = table
        self.query = query
        self.expect = expect
        self.problem = problem
        self.count = 0
        self._rows: list[Row] = []
        self._after = -1
        self._exhausted = False

    async def _fill(self) -> None:
        if self._rows or self._exhausted:
            return
        rows = await self.db.sql.fetch(self.query, [self._after, PAGE_ROWS])
        self._rows = [tuple(r) for r in reversed(rows)]  # pop() takes the lowest index
        if rows:
            self._after = int(rows[-1][1])
        self._exhausted = len(rows) < PAGE_ROWS

    async def check_leaves(self, first: int, entries: list[bytes]) -> None:
        while True:
            await self._fill()
            if not self._rows or int(self._rows[-1][1]) >= first + len(entries):
                return
            row = self._rows.pop()
            index = int(row[1])
            if index < first:
                raise LedgerCorrupt(f"{self.table} row id={row[0]} points at a missing leaf")
            if self.expect(row) != entries[index - first]:
                raise LedgerCorrupt(f"{self.table} row id={row[0]}: does not match its leaf")
            found = self.problem(row)
            if found:
                raise LedgerCorrupt(f"{self.table} row id={row[0]}: {found}")
            self.count += 1

    async def finish(self) -> None:
        await self._fill()
        if self._rows:
            raise LedgerCorrupt(f"{self.table} row id={self._rows[-1][0]} points past the ledger")
