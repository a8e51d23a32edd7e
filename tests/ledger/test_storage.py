"""The ledger in the database: integration, proofs from tiles, checkpoints (SQLite and PG)."""

import asyncio
import random
from typing import Any

import pytest

from hub.ledger.checkpoint import open_checkpoint
from hub.ledger.note import Signer, generate_signer_key, parse_signer_key
from hub.ledger.sequencer import Sequencer, Staged
from hub.ledger.storage import TileReader, read_checkpoint, read_leaf_data
from hub.ledger.tiles import consistency_ranges
from hub.ledger.tree import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from hub.store.db import Database, Sql
from tests.ledger.appender import Entries

ORIGIN = "test.example/log"


@pytest.fixture
def signer() -> Signer:
    return parse_signer_key(generate_signer_key(ORIGIN)[0])


async def _append(seq: Sequencer, entries: list[bytes]) -> int:
    sub = Entries(entries)
    await seq.submit(sub)
    return sub.first_index


async def test_batches_of_every_shape_match_the_reference_tree(
    db: Database, signer: Signer
) -> None:
    seq = Sequencer(db, signer, ORIGIN)
    await seq.ensure_head()
    rng = random.Random(7)
    leaves: list[bytes] = []
    heads = []
    # Batch sizes cross tile boundaries at levels 0 and 1 (256 and 65,536 leaves).
    for batch in [1, 2, 253, 1, 256, 300, 1000, 5, 64_000, 700]:
        data = [f"leaf {len(leaves) + i}".encode() for i in range(batch)]
        first = await _append(seq, data)
        assert first == len(leaves)
        leaves.extend(data)
        head = await read_checkpoint(db.sql)
        assert head is not None and head.size == len(leaves)
        heads.append(head)
    hashes = [leaf_hash(x) for x in leaves]
    reader = TileReader(db, cache_tiles=16)
    for head in heads:
        assert head.root == root_from_leaf_hashes(hashes[: head.size])
        cp = open_checkpoint(head.note, signer.verifier, ORIGIN)
        assert (cp.size, cp.root) == (head.size, head.root)
    n = len(leaves)
    roots: dict[int, bytes] = {}
    for index in [*rng.sample(range(n), 40), 0, n - 1, 65_535, 65_536]:
        for size in sorted({n, index + 1, min(n, max(index + 1, 66_000))}):
            proof = await reader.inclusion_proof(index, size)
            root = roots.get(size) or roots.setdefault(size, root_from_leaf_hashes(hashes[:size]))
            verify_inclusion(index, size, hashes[index], proof, root)
    for old, new in [(1, n), (256, 65_536), (300, 813), (65_537, n), (1000, 66_000)]:
        proof = await reader.consistency_proof(old, new)
        old_root = root_from_leaf_hashes(hashes[:old])
        new_root = root_from_leaf_hashes(hashes[:new])
        verify_consistency(old, new, proof, old_root, new_root)
    assert await read_leaf_data(db, 65_536) == leaves[65_536]
    assert await reader.leaf_hash(12_345) == hashes[12_345]


async def test_proofs_equal_the_reference_proofs_for_small_trees(
    db: Database, signer: Signer
) -> None:
    seq = Sequencer(db, signer, ORIGIN)
    leaves = [bytes([i % 251]) * (i % 7 + 1) for i in range(600)]
    for i in range(0, 600, 37):
        await _append(seq, leaves[i : i + 37])
    hashes = [leaf_hash(x) for x in leaves]
    reader = TileReader(db)
    for size in (1, 2, 3, 255, 256, 257, 511, 600):
        for index in {0, size // 2, size - 1}:
            assert await reader.inclusion_proof(index, size) == inclusion_proof(
                hashes[:size], index
            )
        for old in {1, size // 3, size - 1} - {0}:
            if old < size:
                assert consistency_ranges(old, size)
                assert await reader.consistency_proof(old, size) == consistency_proof(
                    hashes[:size], old
                )


async def test_concurrent_submissions_are_group_committed_without_gaps(
    db: Database, signer: Signer
) -> None:
    seq = Sequencer(db, signer, ORIGIN)
    subs = [Entries([f"{i}:{j}".encode() for j in range(i % 5 + 1)]) for i in range(60)]
    heads = await asyncio.gather(*(seq.submit(s) for s in subs))
    spans = sorted((s.first_index, len(s.entries)) for s in subs)
    at = 0
    for first, count in spans:
        assert first == at
        at += count
    for sub, head in zip(subs, heads, strict=True):
        # The acknowledgement's checkpoint covers the submission's entries.
        assert head.size >= sub.first_index + len(sub.entries)
        stored = await read_checkpoint(db, head.size)
        assert stored == head
    final = await read_checkpoint(db.sql)
    assert final is not None and final.size == at
    assert len({h.size for h in heads}) < len(subs), "submissions were not grouped"


async def test_a_failing_submission_leaves_nothing_and_spares_the_group(
    db: Database, signer: Signer
) -> None:
    class Broken:
        async def stage(self, sql: Sql, first_index: int, group: dict[str, Any]) -> Staged:
            raise ValueError("bad submission")

    seq = Sequencer(db, signer, ORIGIN)
    good = Entries([b"a", b"b"])
    results = await asyncio.gather(seq.submit(Broken()), seq.submit(good), return_exceptions=True)
    assert isinstance(results[0], ValueError)
    head = await read_checkpoint(db.sql)
    assert head is not None and head.size == 2
    assert head.root == root_from_leaf_hashes([leaf_hash(b"a"), leaf_hash(b"b")])
