"""RFC 9162 tree math: hashes, roots, inclusion and consistency proofs, against peers."""

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.ledger.tree import (
    EMPTY_ROOT,
    HASH_SIZE,
    ProofError,
    complete_subtrees,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_consistency_proof,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    root_with,
    split_point,
    verify_consistency,
    verify_inclusion,
)


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def hashes_for(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def mth(hashes: Sequence[bytes]) -> bytes:
    """RFC 9162 section 2.1.1, transcribed recursively, as an oracle for the iterative code."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return sha(b"\x01" + mth(hashes[:k]) + mth(hashes[k:]))


def flip(h: bytes, bit: int = 0) -> bytes:
    return bytes([h[0] ^ (1 << bit)]) + h[1:]


# --- hashing -------------------------------------------------------------------------------


def test_empty_root_is_sha256_of_nothing() -> None:
    assert sha(b"") == EMPTY_ROOT
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root_from_leaf_hashes([]) == EMPTY_ROOT


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    a, b = sha(b"a"), sha(b"b")
    assert leaf_hash(b"x") == sha(b"\x00x")
    assert node_hash(a, b) == sha(b"\x01" + a + b)
    assert node_hash(a, b) != node_hash(b, a)
    assert leaf_hash(a + b) != node_hash(a, b)
    assert len(leaf_hash(b"")) == HASH_SIZE


def test_hash_functions_do_not_keep_state_between_calls() -> None:
    assert leaf_hash(b"x") == leaf_hash(b"x")
    assert node_hash(b"l", b"r") == node_hash(b"l", b"r")


def test_small_roots_by_hand() -> None:
    h0, h1, h2 = leaf_hash(b"0"), leaf_hash(b"1"), leaf_hash(b"2")
    assert root_from_leaf_hashes([h0]) == h0
    assert root_from_leaf_hashes([h0, h1]) == sha(b"\x01" + h0 + h1)
    left = sha(b"\x01" + h0 + h1)
    assert root_from_leaf_hashes([h0, h1, h2]) == sha(b"\x01" + left + h2)


@pytest.mark.parametrize(
    ("n", "k"), [(2, 1), (3, 2), (4, 2), (5, 4), (8, 4), (9, 8), (2**40, 2**39)]
)
def test_split_point(n: int, k: int) -> None:
    assert split_point(n) == k


@pytest.mark.parametrize("n", [-1, 0, 1])
def test_split_point_needs_two_leaves(n: int) -> None:
    with pytest.raises(ValueError):
        split_point(n)


def test_root_with_needs_a_hash() -> None:
    with pytest.raises(ValueError):
        root_with([], node_hash)


@pytest.mark.parametrize("n", range(1, 70))
def test_root_matches_recursive_definition(n: int) -> None:
    hashes = hashes_for(n)
    assert root_from_leaf_hashes(hashes) == mth(hashes)


def test_large_tree_root_matches_recursive_definition() -> None:
    hashes = hashes_for(5000)
    assert root_from_leaf_hashes(hashes) == mth(hashes)


# --- known answers: the RFC 6962 reference data used by certificate-transparency and by
# transparency-dev/merkle's proof tests (leaves D[0..7], roots of sizes 1..8, some proofs).

KAT_LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243")] + [
    bytes.fromhex("5051525354555657"),
    bytes.fromhex("606162636465666768696a6b6c6d6e6f"),
]
KAT_ROOTS = [
    bytes.fromhex(h)
    for h in [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]
KAT_INCLUSION = [  # (index, size, path)
    (0, 8, ["96a296d2", "5f083f0a", "6b47aaf2"]),
    (5, 8, ["bc1a0643", "ca854ea1", "d37ee418"]),
    (2, 3, ["fac54203"]),
    (1, 5, ["6e340b9c", "5f083f0a", "bc1a0643"]),
]
KAT_CONSISTENCY = [  # (size1, size2, proof)
    (1, 8, ["96a296d2", "5f083f0a", "6b47aaf2"]),
    (6, 8, ["0ebc5d34", "ca854ea1", "d37ee418"]),
    (2, 5, ["5f083f0a", "bc1a0643"]),
    (6, 7, ["0ebc5d34", "b08693ec", "d37ee418"]),
]
KAT_HASHES = [leaf_hash(d) for d in KAT_LEAVES]


@pytest.mark.parametrize("size", range(1, 9))
def test_known_roots(size: int) -> None:
    assert root_from_leaf_hashes(KAT_HASHES[:size]) == KAT_ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "prefixes"), KAT_INCLUSION)
def test_known_inclusion_proofs(index: int, size: int, prefixes: list[str]) -> None:
    proof = inclusion_proof(KAT_HASHES[:size], index)
    assert [h.hex()[:8] for h in proof] == prefixes
    verify_inclusion(index, size, KAT_HASHES[index], proof, KAT_ROOTS[size - 1])


@pytest.mark.parametrize(("size1", "size2", "prefixes"), KAT_CONSISTENCY)
def test_known_consistency_proofs(size1: int, size2: int, prefixes: list[str]) -> None:
    proof = consistency_proof(KAT_HASHES[:size2], size1)
    assert [h.hex()[:8] for h in proof] == prefixes
    verify_consistency(size1, size2, proof, KAT_ROOTS[size1 - 1], KAT_ROOTS[size2 - 1])


# --- inclusion -----------------------------------------------------------------------------

sizes = st.integers(min_value=1, max_value=300)


@st.composite
def size_and_index(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(sizes)
    return n, draw(st.integers(min_value=0, max_value=n - 1))


@given(size_and_index())
def test_inclusion_proof_verifies_and_rejects_tampering(case: tuple[int, int]) -> None:
    n, i = case
    hashes = hashes_for(n)
    root = root_from_leaf_hashes(hashes)
    proof = inclusion_proof(hashes, i)
    assert root_from_inclusion_proof(i, n, hashes[i], proof) == root
    verify_inclusion(i, n, hashes[i], proof, root)

    bad_calls: list[tuple[int, int, bytes, list[bytes], bytes]] = [
        (i, n, flip(hashes[i]), proof, root),
        (i, n, hashes[i], proof, flip(root, 7)),
        (i, n, hashes[i], [*proof, root], root),
        (i, n, hashes[i], [root, *proof], root),
        (i, n * 2, hashes[i], proof, root),
    ]
    bad_calls += [
        (i, n, hashes[i], [*proof[:k], flip(p, 3), *proof[k + 1 :]], root)
        for k, p in enumerate(proof)
    ]
    if proof:
        bad_calls.append((i, n, hashes[i], proof[:-1], root))
    bad_calls += [
        (j, n, hashes[i], proof, root) for j in (i - 1, i + 1, i ^ 2) if 0 <= j < n and j != i
    ]
    if i < n // 2:
        bad_calls.append((i, n // 2, hashes[i], proof, root))
    for args in bad_calls:
        with pytest.raises(ProofError):
            verify_inclusion(*args)


@pytest.mark.parametrize(
    ("index", "size", "leaf", "proof"),
    [
        (0, 0, bytes(32), []),  # empty tree
        (1, 1, bytes(32), []),  # index == size
        (-1, 1, bytes(32), []),
        (0, 1, bytes(31), []),  # short leaf hash
        (0, 2, bytes(32), [bytes(33)]),  # long proof hash
        (0, 2, bytes(32), [b""]),
    ],
)
def test_malformed_inclusion_input_is_a_proof_error(
    index: int, size: int, leaf: bytes, proof: list[bytes]
) -> None:
    with pytest.raises(ProofError):
        root_from_inclusion_proof(index, size, leaf, proof)


def test_inclusion_proof_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        inclusion_proof(hashes_for(3), 3)
    with pytest.raises(ValueError):
        inclusion_proof([], 0)


# --- consistency ---------------------------------------------------------------------------


@st.composite
def old_and_new_size(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(sizes)
    return draw(st.integers(min_value=1, max_value=n)), n


@given(old_and_new_size())
def test_consistency_proof_verifies_and_rejects_tampering(case: tuple[int, int]) -> None:
    m, n = case
    hashes = hashes_for(n)
    root1, root2 = root_from_leaf_hashes(hashes[:m]), root_from_leaf_hashes(hashes)
    proof = consistency_proof(hashes, m)
    assert root_from_consistency_proof(m, n, proof, root1) == root2
    verify_consistency(m, n, proof, root1, root2)

    bad_calls: list[tuple[int, int, list[bytes], bytes, bytes]] = [
        (m, n, proof, flip(root1), root2),
        (m, n, proof, root1, flip(root2)),
        (m, n, [*proof, root1], root1, root2),
        (m, n, [root2, *proof], root1, root2),
        (n, m, proof, root1, root2) if m != n else (m, n, [root1], root1, root2),
    ]
    bad_calls += [
        (m, n, [*proof[:k], flip(p, 4), *proof[k + 1 :]], root1, root2) for k, p in enumerate(proof)
    ]
    if proof:
        bad_calls.append((m, n, proof[:-1], root1, root2))
        bad_calls.append((m, n, [], root1, root2))
        bad_calls.append((m, n, proof, root2, root1))
    for args in bad_calls:
        with pytest.raises(ProofError):
            verify_consistency(*args)


@pytest.mark.parametrize("n", range(1, 40))
def test_consistency_from_every_old_size(n: int) -> None:
    hashes = hashes_for(n)
    root2 = root_from_leaf_hashes(hashes)
    for m in range(1, n + 1):
        proof = consistency_proof(hashes, m)
        verify_consistency(m, n, proof, root_from_leaf_hashes(hashes[:m]), root2)
        # A proof never needs more than one hash per level plus the old subtree root.
        assert len(proof) <= (n - 1).bit_length() + 1


def test_consistency_edge_cases() -> None:
    r = leaf_hash(b"r")
    assert consistency_proof(hashes_for(5), 5) == []
    assert consistency_proof(hashes_for(5), 0) == []
    assert root_from_consistency_proof(3, 3, [], r) == r
    verify_consistency(3, 3, [], r, r)
    with pytest.raises(ProofError):
        verify_consistency(3, 3, [], r, flip(r))
    with pytest.raises(ProofError):  # every tree extends the empty one: nothing to prove
        verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    with pytest.raises(ProofError):
        verify_consistency(0, 4, [], EMPTY_ROOT, r)
    with pytest.raises(ProofError):
        root_from_consistency_proof(2, 3, [bytes(32)], bytes(31))  # short root1
    with pytest.raises(ValueError):
        consistency_proof(hashes_for(5), 6)


# --- complete subtrees ---------------------------------------------------------------------


def test_complete_subtrees_examples() -> None:
    assert complete_subtrees(0, 7) == [(2, 0), (1, 2), (0, 6)]
    assert complete_subtrees(0, 0) == []
    assert complete_subtrees(0, 256) == [(8, 0)]
    assert complete_subtrees(3, 9) == [(0, 3), (2, 1), (0, 8)]
    with pytest.raises(ValueError):
        complete_subtrees(5, 4)


@given(st.integers(min_value=0, max_value=1 << 20), st.integers(min_value=0, max_value=1 << 20))
def test_complete_subtrees_tile_the_range_with_maximal_aligned_nodes(
    begin: int, width: int
) -> None:
    end = begin + width
    nodes = complete_subtrees(begin, end)
    cursor = begin
    for level, index in nodes:
        assert index << level == cursor  # contiguous, left to right, aligned by construction
        cursor += 1 << level
        parent_begin, parent_end = (index >> 1) << (level + 1), ((index >> 1) + 1) << (level + 1)
        assert not (begin <= parent_begin and parent_end <= end), "node could have been merged"
    assert cursor == end
    assert len(nodes) <= 2 * max(1, width.bit_length())


@given(sizes)
def test_complete_subtrees_of_a_tree_fold_to_its_root(n: int) -> None:
    hashes = hashes_for(n)
    subroots = [
        root_from_leaf_hashes(hashes[index << level : (index + 1) << level])
        for level, index in complete_subtrees(0, n)
    ]
    acc = subroots[-1]
    for h in reversed(subroots[:-1]):
        acc = node_hash(h, acc)
    assert acc == root_from_leaf_hashes(hashes)
