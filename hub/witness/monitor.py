"""`hub monitor URL --key VKEY [--policy FILE]`: follow a log through its public tiles.

Each round it reads the checkpoint, checks the log's signature (and the policy's quorum,
given one), recomputes the checkpoint's root and the last seen checkpoint's root from
the served tiles, and checks every new entry bundle against the level-0 tiles. A smaller
size, another root for a size it saw, or tiles that do not lead to the signed roots end
it with exit status 3 and both checkpoints printed as evidence.
"""

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from hub.errors import HubError
from hub.ledger.checkpoint import Checkpoint, open_checkpoint
from hub.ledger.layout import BUNDLE_SIZE, TILE_HEIGHT, TILE_WIDTH, decode_bundle, tile_path
from hub.ledger.note import NoteError, Verifier, parse_verifier_key
from hub.ledger.policy import Policy, parse_policy
from hub.ledger.tiles import subtrees
from hub.ledger.tree import HASH_SIZE, leaf_hash, node_hash, root_from_leaf_hashes

EXIT_EVIDENCE = 3


class Misbehaviour(HubError):
    """The log showed two views that cannot both be true; ``evidence`` says which."""

    code = "MISBEHAVIOUR"

    def __init__(self, kind: str, message: str, before: str, now: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind, self.before, self.now = kind, before, now


@dataclass(frozen=True)
class Seen:
    checkpoint: Checkpoint
    note: str


class TileSource:
    """The tiles and bundles of a tree of ``size`` leaves, read over HTTP."""

    def __init__(self, client: httpx.AsyncClient, prefix: str, size: int) -> None:
        self.client, self.prefix, self.size = client, prefix, size
        self._rows: dict[tuple[int, int], list[bytes]] = {}

    def width(self, level: int, index: int) -> int:
        full_below = self.size >> (TILE_HEIGHT * (level + 1))
        return TILE_WIDTH if index < full_below else (self.size >> (TILE_HEIGHT * level)) % 256

    async def row(self, level: int, index: int) -> list[bytes]:
        key = (level, index)
        if key not in self._rows:
            width = self.width(level, index)
            partial = None if width == TILE_WIDTH else width
            blob = await self._get(tile_path(level, index, partial))
            if len(blob) != width * HASH_SIZE:
                raise ValueError(f"tile {level}/{index} has {len(blob)} bytes, not {width * 32}")
            self._rows[key] = [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]
        return self._rows[key]

    async def bundle(self, index: int) -> list[bytes]:
        width = self.width(0, index)
        return decode_bundle(
            await self._get(tile_path(None, index, None if width == 256 else width))
        )

    async def _get(self, path: str) -> bytes:
        response = await self.client.get(f"{self.prefix}/{path}")
        if response.status_code != 200:
            raise ValueError(f"GET {path}: HTTP {response.status_code}")
        return response.content

    async def node(self, level: int, index: int) -> bytes:
        """The hash of complete node (level, index) from the tile holding it."""
        tile_level, k = divmod(level, TILE_HEIGHT)
        first = index << k
        row = await self.row(tile_level, first // TILE_WIDTH)
        start = first % TILE_WIDTH
        hashes = row[start : start + (1 << k)]
        if len(hashes) != 1 << k:
            raise ValueError(f"tile {tile_level}/{first // TILE_WIDTH} lacks node {level}/{index}")
        return root_from_leaf_hashes(hashes)

    async def root(self, size: int) -> bytes:
        """The root of the first ``size`` leaves, from complete subtrees right to left."""
        parts = subtrees(0, size)
        acc = await self.node(*parts[-1])
        for part in reversed(parts[:-1]):
            acc = node_hash(await self.node(*part), acc)
        return acc


class Monitor:
    def __init__(
        self, client: httpx.AsyncClient, prefix: str, key: Verifier, policy: Policy | None
    ) -> None:
        self.client, self.prefix, self.key, self.policy = client, prefix, key, policy
        self.last: Seen | None = None

    async def fetch(self) -> Seen:
        response = await self.client.get(f"{self.prefix}/checkpoint")
        if response.status_code != 200:
            raise ValueError(f"GET checkpoint: HTTP {response.status_code}")
        note = response.text
        cp = open_checkpoint(note, self.key)
        if self.policy is not None:
            self.policy.verify(note, [self.key])
        return Seen(cp, note)

    async def check(self, now: Seen) -> bool:
        """Check ``now`` against the last seen checkpoint; True when it moved forward."""
        last = self.last
        cp = now.checkpoint
        if last is not None:
            old = last.checkpoint
            if cp.origin != old.origin:
                raise Misbehaviour("fork", "the origin changed", last.note, now.note)
            if cp.size < old.size:
                raise Misbehaviour(
                    "rollback", f"size went back from {old.size} to {cp.size}", last.note, now.note
                )
            if cp.size == old.size:
                if cp.root != old.root:
                    raise Misbehaviour(
                        "fork", f"two roots for tree size {cp.size}", last.note, now.note
                    )
                return False
        tiles = TileSource(self.client, self.prefix, cp.size)
        if cp.size and await tiles.root(cp.size) != cp.root:
            raise Misbehaviour(
                "fork", "the served tiles do not lead to the signed root", now.note, now.note
            )
        start = 0
        if last is not None and last.checkpoint.size:
            if await tiles.root(last.checkpoint.size) != last.checkpoint.root:
                raise Misbehaviour(
                    "fork",
                    f"the tree of size {cp.size} does not extend the one of size"
                    f" {last.checkpoint.size}",
                    last.note,
                    now.note,
                )
            start = last.checkpoint.size
        await self._check_bundles(tiles, start, cp.size, now.note)
        self.last = now
        return True

    async def _check_bundles(self, tiles: TileSource, start: int, end: int, note: str) -> None:
        for index in range(start // BUNDLE_SIZE, -(-end // BUNDLE_SIZE)):
            entries = await tiles.bundle(index)
            if [leaf_hash(e) for e in entries] != await tiles.row(0, index):
                raise Misbehaviour(
                    "fork", f"entry bundle {index} does not hash to its tile", note, note
                )


def _evidence(found: Misbehaviour) -> str:
    return (
        f"hub monitor: {found.kind.upper()}: {found}\n"
        f"--- checkpoint seen before\n{found.before}"
        f"--- checkpoint served now\n{found.now}"
    )


async def run_monitor(args: argparse.Namespace) -> int:
    key = parse_verifier_key(args.key.strip())
    policy = parse_policy(Path(args.policy).read_text(encoding="utf-8")) if args.policy else None
    base = args.url.rstrip("/")
    prefix = base if base.endswith("/log") else base + "/log"
    state = Path(args.state) if args.state else None
    async with httpx.AsyncClient(timeout=30.0) as client:
        monitor = Monitor(client, prefix, key, policy)
        if state is not None and state.exists():
            note = json.loads(state.read_text())["note"]
            monitor.last = Seen(open_checkpoint(note, key), note)
        while True:
            try:
                seen = await monitor.fetch()
                if await monitor.check(seen):
                    cp = seen.checkpoint
                    print(f"checkpoint {cp.size} verified", flush=True)
                    if state is not None:
                        state.write_text(json.dumps({"note": seen.note}))
            except Misbehaviour as found:
                print(_evidence(found), flush=True)
                print(f"hub monitor: {found}", file=sys.stderr, flush=True)
                return EXIT_EVIDENCE
            except (httpx.HTTPError, NoteError, ValueError) as exc:
                # The log unreachable or not (yet) witnessed is not evidence; say so, go on.
                print(f"hub monitor: warning: {exc}", file=sys.stderr, flush=True)
                if args.once:
                    return 1
            if args.once:
                return 0
            await asyncio.sleep(args.interval)
