"""Deterministic leaf data shaped like the hub's document leaves (JCS, about 220 bytes).

Leaves are made chunk by chunk so that no benchmark holds the whole ledger in memory.
"""

from collections.abc import Iterator
from hashlib import sha256

CHUNK = 65_536


def leaf(i: int) -> bytes:
    """Leaf `i`: the JCS (sorted keys, no spaces) of a document leaf, as DESIGN.md has it."""
    digest = sha256(b"bench-body-%d" % i).hexdigest().encode()
    day, second = divmod(i, 86_400)
    return (
        b'{"digest":"sha256:%s","id":"INV-2025-%010d","issuedAt":"2025-%02d-%02dT%02d:%02d:%02dZ",'
        b'"issuer":"hospital-%04d","kind":"document","type":"medical_invoice","v":1,"version":1}'
        % (
            digest,
            i,
            day // 28 % 12 + 1,
            day % 28 + 1,
            second // 3600,
            second // 60 % 60,
            second % 60,
            i % 1_000,
        )
    )


def leaves(start: int, count: int) -> list[bytes]:
    return [leaf(i) for i in range(start, start + count)]


def chunks(total: int, size: int = CHUNK) -> Iterator[list[bytes]]:
    """Leaves 0..total-1 in lists of at most `size`."""
    for start in range(0, total, size):
        yield leaves(start, min(size, total - start))
