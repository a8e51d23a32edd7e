"""Our tree against independent implementations: pymerkle (RFC 9162 hashing) and merkletools."""

import hashlib
import os
import warnings
from functools import cache
from types import ModuleType

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pymerkle import InmemoryTree
from pymerkle import verify_consistency as pymerkle_verify_consistency
from pymerkle import verify_inclusion as pymerkle_verify_inclusion

from hub.ledger.tree import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaf_hashes,
    root_with,
    verify_consistency,
    verify_inclusion,
)

MAX_SIZE = 3000


def entry(i: int) -> bytes:
    return b"entry-%d" % i


@cache
def pymerkle_tree() -> InmemoryTree:
    # pymerkle's default (sha256, security on) is RFC 9162 hashing: 0x00 leaf and 0x01 node
    # prefixes; it hashes each entry itself and indexes leaves from 1.
    t = InmemoryTree(algorithm="sha256")
    t.append_entries(entry(i) for i in range(MAX_SIZE))
    return t


@cache
def our_hashes() -> list[bytes]:
    return [leaf_hash(entry(i)) for i in range(MAX_SIZE)]


def test_leaf_hashes_equal_pymerkle() -> None:
    t = pymerkle_tree()
    assert [t.get_leaf(i + 1) for i in range(MAX_SIZE)] == our_hashes()


@st.composite
def size_index_old(draw: st.DrawFn) -> tuple[int, int, int]:
    n = draw(st.integers(min_value=1, max_value=MAX_SIZE))
    index = draw(st.integers(min_value=0, max_value=n - 1))
    old = draw(st.integers(min_value=1, max_value=n))
    return n, index, old


@settings(max_examples=25, deadline=None)
@given(size_index_old())
@example((1, 0, 1))
@example((256, 255, 128))
@example((257, 256, 256))
@example((MAX_SIZE, MAX_SIZE - 1, MAX_SIZE - 1))
def test_roots_and_proofs_equal_pymerkle(case: tuple[int, int, int]) -> None:
    n, index, old = case
    t, hashes = pymerkle_tree(), our_hashes()[:n]
    root = root_from_leaf_hashes(hashes)
    old_root = root_from_leaf_hashes(hashes[:old])
    assert t.get_root(n) == root
    assert t.get_root(old) == old_root

    # pymerkle's inclusion path is [leaf hash, RFC 9162 audit path...].
    theirs = t.prove_inclusion(index + 1, n)
    ours = inclusion_proof(hashes, index)
    assert theirs.path == [hashes[index], *ours]
    pymerkle_verify_inclusion(hashes[index], root, theirs, index=index + 1, size=n)
    verify_inclusion(index, n, hashes[index], ours, root)

    # pymerkle's consistency path is not RFC 9162's PROOF(m, D[n]): for m < n it is the first
    # new leaf, D[m], followed by that leaf's audit path, with a mask picking the old root's
    # parts. Check that exact relation, and that both proofs bind the same pair of roots.
    theirs_c = t.prove_consistency(old, n)
    ours_c = consistency_proof(hashes, old)
    if old < n:
        assert theirs_c.path == [hashes[old], *inclusion_proof(hashes, old)]
    pymerkle_verify_consistency(old_root, root, theirs_c, prior_size=old, later_size=n)
    verify_consistency(old, n, ours_c, old_root, root)


def import_merkletools() -> ModuleType:
    """merkletools, which the bench installs with `pip install --no-deps merkletools`.

    Its only dependency, pysha3, is for keccak, which we do not use; without it the module
    imports fine but warns.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            import merkletools
        except ImportError:
            reason = "merkletools not installed (pip install --no-deps merkletools)"
            if os.environ.get("CI") == "true":
                pytest.fail(reason)
            pytest.skip(reason)
    return merkletools


def plain_node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(left + right).digest()


@pytest.mark.parametrize("n", range(1, 101))
def test_tree_shape_equals_merkletools(n: int) -> None:
    # merkletools hashes pairs without domain separation and carries an odd last node up
    # unchanged; with the same pair function our RFC-shaped fold must give its root.
    mt = import_merkletools().MerkleTools(hash_type="sha256")
    leaves = [hashlib.sha256(b"%d" % i).digest() for i in range(n)]
    mt.add_leaf([h.hex() for h in leaves])
    mt.make_tree()
    assert bytes.fromhex(mt.get_merkle_root()) == root_with(leaves, plain_node)
