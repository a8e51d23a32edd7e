"""RFC 9162 (Certificate Transparency v2) Merkle tree math: hashes, roots and proofs.

Pure functions over leaf hashes; no I/O and no imports from the rest of the project.
Leaves are indexed from 0. Verification follows RFC 9162 sections 2.1.3.2 and 2.1.4.2,
with the edge-case semantics of transparency-dev/merkle's `proof` package (the source of
the golden vectors): a consistency proof from an empty tree is rejected as meaningless.
"""

from collections.abc import Callable, Sequence
from hashlib import sha256

from hub.errors import BadInput

HASH_SIZE: int = 32
EMPTY_ROOT: bytes = sha256(b"").digest()

# Copying a hasher that already absorbed the domain-separation prefix is ~10% faster than
# hashing `prefix + data` afresh, and these two functions run millions of times in bulk.
# The prototypes are never updated after this line, so sharing them across threads is safe.
_LEAF_PROTO = sha256(b"\x00")
_NODE_PROTO = sha256(b"\x01")


class ProofError(BadInput, ValueError):
    """A proof does not verify, or is malformed for its index/size."""


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data)."""
    h = _LEAF_PROTO.copy()
    h.update(data)
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    h = _NODE_PROTO.copy()
    h.update(left)
    h.update(right)
    return h.digest()


def split_point(n: int) -> int:
    """The largest power of two strictly less than `n` (n >= 2): RFC 9162's k."""
    if n < 2:
        raise ValueError(f"split point needs n >= 2, got {n}")
    return 1 << ((n - 1).bit_length() - 1)


def root_with(hashes: Sequence[bytes], node: Callable[[bytes, bytes], bytes]) -> bytes:
    """Root of the RFC 9162-shaped tree over non-empty `hashes`, combining pairs with `node`.

    Pairs are combined level by level and an odd last node is carried up unchanged; that
    yields exactly the RFC's largest-power-of-two split, in n - 1 calls and no recursion.
    """
    if not hashes:
        raise ValueError("root_with needs at least one hash")
    level = list(hashes)
    while len(level) > 1:
        carry = level[-1] if len(level) & 1 else None
        level = list(map(node, level[0:-1:2], level[1::2]))
        if carry is not None:
            level.append(carry)
    return level[0]


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) from all n leaf hashes; EMPTY_ROOT when there are none."""
    if not hashes:
        return EMPTY_ROOT
    return root_with(hashes, node_hash)


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) over all n leaf hashes, ordered from the leaf up."""
    n = len(leaf_hashes)
    if not 0 <= index < n:
        raise ValueError(f"index {index} out of range for size {n}")
    lo, hi = 0, n
    siblings: list[bytes] = []  # collected root-down
    while hi - lo > 1:
        mid = lo + split_point(hi - lo)
        if index < mid:
            siblings.append(root_from_leaf_hashes(leaf_hashes[mid:hi]))
            hi = mid
        else:
            siblings.append(root_from_leaf_hashes(leaf_hashes[lo:mid]))
            lo = mid
    siblings.reverse()
    return siblings


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(old_size, D[n]) over all n leaf hashes; [] when old_size is 0 or n."""
    n = len(leaf_hashes)
    if not 0 <= old_size <= n:
        raise ValueError(f"old size {old_size} out of range for size {n}")
    if old_size in (0, n):
        return []
    lo, hi, m = 0, n, old_size
    known = True  # RFC's b: the old root is the client's own, so it is left out
    nodes: list[bytes] = []  # collected root-down
    while m != hi - lo:
        mid = lo + split_point(hi - lo)
        if m <= mid - lo:
            nodes.append(root_from_leaf_hashes(leaf_hashes[mid:hi]))
            hi = mid
        else:
            nodes.append(root_from_leaf_hashes(leaf_hashes[lo:mid]))
            m -= mid - lo
            lo = mid
            known = False
    if not known:
        nodes.append(root_from_leaf_hashes(leaf_hashes[lo:hi]))
    nodes.reverse()
    return nodes


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, want {HASH_SIZE}")


def root_from_inclusion_proof(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root that `proof` yields for `leaf_hash` at `index` in a tree of `size` leaves."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} out of range for size {size}")
    _check_hash(leaf_hash, "leaf hash")
    fn, sn, r = index, size - 1, leaf_hash
    for i, p in enumerate(proof):
        _check_hash(p, f"proof[{i}]")
        if sn == 0:
            raise ProofError(f"proof too long: {len(proof)} hashes")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # Skip the levels where this node is its own parent (the right border).
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"proof too short: {len(proof)} hashes")
    return r


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ProofError unless `proof` shows `leaf_hash` at `index` under `root` of `size`."""
    if root_from_inclusion_proof(index, size, leaf_hash, proof) != root:
        raise ProofError("inclusion proof does not lead to the root")


def root_from_consistency_proof(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes
) -> bytes:
    """The root of size `size2` that `proof` extends `root1` (of size `size1`) to.

    Equal sizes need an empty proof and give `root1` back unchecked, as transparency-dev
    does; size1 == 0 is rejected, since every tree extends the empty one.
    """
    if size1 < 0 or size2 < size1:
        raise ProofError(f"sizes {size1} -> {size2} do not grow")
    if size1 == 0:
        raise ProofError("consistency proof from an empty tree is meaningless")
    if size1 == size2:
        if proof:
            raise ProofError("equal sizes need an empty proof")
        return root1
    if not proof:
        raise ProofError("empty proof for different sizes")
    _check_hash(root1, "root1")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof[{i}]")
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # the old tree is a complete subtree of the new one
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"proof too long: {len(proof)} hashes")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"proof too short: {len(proof)} hashes")
    if fr != root1:
        raise ProofError("consistency proof does not lead to root1")
    return sr


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Raise ProofError unless `proof` shows the tree `root1` of `size1` is a prefix of `root2`."""
    if root_from_consistency_proof(size1, size2, proof, root1) != root2:
        raise ProofError("consistency proof does not lead to root2")


def complete_subtrees(begin: int, end: int) -> list[tuple[int, int]]:
    """The leaf range [begin, end) as maximal aligned complete subtrees, left to right.

    Node (level, index) covers leaves [index << level, (index + 1) << level); for example
    complete_subtrees(0, 7) == [(2, 0), (1, 2), (0, 6)].
    """
    if not 0 <= begin <= end:
        raise ValueError(f"bad leaf range [{begin}, {end})")
    nodes: list[tuple[int, int]] = []
    while begin < end:
        level = (end - begin).bit_length() - 1  # the largest power of two that fits...
        if begin:  # ...and that `begin` is aligned to
            level = min(level, (begin & -begin).bit_length() - 1)
        nodes.append((level, begin >> level))
        begin += 1 << level
    return nodes
