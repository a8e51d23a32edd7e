"""The public read path over HTTP: a tlog client's view (C2SP tlog-tiles, signed notes)."""

import hashlib
from collections.abc import AsyncIterator

import httpx
import pytest

from hub.app import create_app
from hub.documents.demo_data import DEMO_HOSPITALS, demo_invoices
from hub.documents.service import CREATED, DocumentInput
from hub.institutions import add_institution
from hub.ledger.checkpoint import open_checkpoint
from hub.ledger.layout import parse_tile_index
from hub.ledger.note import parse_verifier_key
from hub.services import Hub

SIZE = 600  # two full level-0 tiles, a partial one of 88, a level-1 tile of 2


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the HTTP layer is backend-independent; the ledger is tested on both


# --- an independent RFC 9162 fold, written from the RFC with hashlib only ---


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _mth(hashes: list[bytes]) -> bytes:
    """MTH over a list of already-hashed leaves (RFC 9162, 2.1.1)."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return _node(_mth(hashes[:k]), _mth(hashes[k:]))


def _root_from_tile_rows(size: int, level1: list[bytes], edge: list[bytes]) -> bytes:
    """Root from level-1 hashes (subtrees of 256 leaves) and the partial level-0 tile.

    A tree is the right fold of its complete subtrees, largest first.
    """
    parts, start, bit = [], 0, 1 << size.bit_length()
    full = size - len(edge)
    while bit:
        if size & bit:
            if bit >= 256:
                parts.append(_mth(level1[start // 256 : (start + bit) // 256]))
            else:
                parts.append(_mth(edge[start - full : start - full + bit]))
            start += bit
        bit >>= 1
    acc = parts[-1]
    for part in reversed(parts[:-1]):
        acc = _node(part, acc)
    return acc


def _hashes(blob: bytes) -> list[bytes]:
    assert len(blob) % 32 == 0
    return [blob[i : i + 32] for i in range(0, len(blob), 32)]


def _bundle(data: bytes) -> list[bytes]:
    entries, at = [], 0
    while at < len(data):
        n = int.from_bytes(data[at : at + 2], "big")
        entries.append(data[at + 2 : at + 2 + n])
        assert len(entries[-1]) == n, "bundle ends inside an entry"
        at += 2 + n
    return entries


@pytest.fixture
async def client(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    for hospital in DEMO_HOSPITALS:
        await add_institution(hub.db, hospital.id, hospital.name, "hospital")
    bodies = demo_invoices(SIZE, seed=21)
    # A few batches of different shapes, one submit per hospital and batch.
    for start, end in [(0, 100), (100, 356), (356, 357), (357, SIZE)]:
        for hospital in DEMO_HOSPITALS:
            docs = [
                DocumentInput("medical_invoice", f"{b['billCode']}-{b['billNumber']}", b)
                for b in bodies[start:end]
                if b["billCode"] == hospital.bill_code
            ]
            results, _ = await hub.documents.submit(hospital.id, docs)
            assert {r.status for r in results} <= {CREATED}
    transport = httpx.ASGITransport(app=create_app(hub=hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as c:
        yield c


async def test_a_tlog_client_recomputes_the_signed_root_from_served_tiles(
    client: httpx.AsyncClient, hub: Hub
) -> None:
    key = await client.get("/log/key")
    assert key.status_code == 200
    verifier = parse_verifier_key(key.text.strip())
    got = await client.get("/log/checkpoint")
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("text/plain")
    cp = open_checkpoint(got.text, verifier, hub.settings.origin)
    assert cp.size == SIZE

    tiles = {}
    for path in ["0/000", "0/001", f"0/002.p/{SIZE - 512}", "1/000.p/2"]:
        r = await client.get(f"/log/tile/{path}")
        assert r.status_code == 200, path
        tiles[path] = _hashes(r.content)
    assert [len(t) for t in tiles.values()] == [256, 256, SIZE - 512, 2]
    leaves = tiles["0/000"] + tiles["0/001"] + tiles[f"0/002.p/{SIZE - 512}"]
    level1 = tiles["1/000.p/2"]

    assert _mth(leaves) == cp.root
    assert level1 == [_mth(tiles["0/000"]), _mth(tiles["0/001"])]
    assert _root_from_tile_rows(SIZE, level1, tiles[f"0/002.p/{SIZE - 512}"]) == cp.root

    # Entry bundles hold the leaf data whose hashes are the level-0 tile.
    entries: list[bytes] = []
    for path in ["000", "001", f"002.p/{SIZE - 512}"]:
        r = await client.get(f"/log/tile/entries/{path}")
        assert r.status_code == 200, path
        entries.extend(_bundle(r.content))
    assert [_leaf(e) for e in entries] == leaves
    assert b'"kind":"document"' in entries[0]

    # A shorter view of a partial tile is a prefix of it (a client at an older checkpoint).
    r = await client.get("/log/tile/0/002.p/10")
    assert r.status_code == 200 and _hashes(r.content) == leaves[512:522]
    r = await client.get("/log/tile/entries/002.p/3")
    assert r.status_code == 200 and _bundle(r.content) == entries[512:515]


NOT_FOUND = [
    # beyond the tree
    "/log/tile/0/003",
    "/log/tile/0/002",  # only partial so far
    f"/log/tile/0/002.p/{SIZE - 512 + 1}",
    "/log/tile/1/000",
    "/log/tile/2/000",
    "/log/tile/entries/002",
    "/log/tile/entries/003",
    "/log/tile/0/x001/234",
    # past what any index or level can be: never another tile's bytes, never a 500
    "/log/tile/0/x281/x474/x976/x710/656.p/2",
    "/log/tile/0/x999/x999/x999/x999/x999/x999/x999/999",
    "/log/tile/99999999999/000",
    "/log/tile/entries/x999/x999/x999/x999/x999/x999/x999/999",
    # malformed
    "/log/tile/0/0",
    "/log/tile/0/0000",
    "/log/tile/0/001/234",
    "/log/tile/0/x1/234",
    "/log/tile/0/000.p/0",
    "/log/tile/0/000.p/256",
    "/log/tile/0/000.p/05",
    "/log/tile/0/000.p/",
    "/log/tile/0/000.p",
    "/log/tile/0/",
    "/log/tile/a/000",
    "/log/tile/-1/000",
    "/log/tile/entries/abc",
    "/log/tile/entries/",
    "/log/tile/entries/000.p/256",
    "/log/tile/0/%D9%A0%D9%A0%D9%A1",  # ٠٠١
    # non-canonical spellings of tiles that exist (C2SP tlog-tiles: one URL per tile)
    "/log/tile/00/000",
    "/log/tile/01/000.p/2",
    "/log/tile/0/x000/000",
    "/log/tile/0/x000/001",
    "/log/tile/0/x000/x000/001",
    "/log/tile/entries/x000/000",
    "/log/tile/+0/000",
    "/log/tile/0/000.p/+5",
]


async def test_missing_and_malformed_tiles_are_404_and_health(client: httpx.AsyncClient) -> None:
    # One ledger for every path: building it is the slow part.
    got = {path: (await client.get(path)).status_code for path in NOT_FOUND}
    assert {path: code for path, code in got.items() if code != 404} == {}
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).status_code == 200


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("000", (0, None)),
        ("067", (67, None)),
        ("999", (999, None)),
        ("x001/234", (1234, None)),
        ("x001/x234/067", (1_234_067, None)),
        ("x001/x234/067.p/8", (1_234_067, 8)),
        ("002.p/1", (2, 1)),
        ("002.p/255", (2, 255)),
    ],
)
def test_parse_tile_index(path: str, expected: tuple[int, int | None]) -> None:
    assert parse_tile_index(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "",
        "1",
        "01",
        "0000",
        "1234",
        "abc",
        "00a",
        "x001",
        "001/234",
        "x1/234",
        "x0001/234",
        "x001/x234",
        "y001/234",
        "000.p/0",
        "000.p/256",
        "000.p/-1",
        "000.p/07",
        "000.p/",
        "000.p",
        "000.p/1/2",
        "x001.p/1",
        "000/",
        "\u0660\u0660\u0661",  # Arabic-Indic digits
        "x\u0660\u0660\u0661/234",
    ],
)
def test_parse_tile_index_rejects(path: str) -> None:
    with pytest.raises(ValueError):
        parse_tile_index(path)


async def test_bundles_are_gzipped_for_clients_that_accept_it(client: httpx.AsyncClient) -> None:
    plain = await client.get("/log/tile/entries/000", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    zipped = await client.get("/log/tile/entries/000", headers={"Accept-Encoding": "br, gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["vary"] == "Accept-Encoding"
    assert zipped.content == plain.content  # httpx decoded it: the same bundle
    refused = await client.get("/log/tile/entries/000", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers


@pytest.mark.parametrize(
    "path",
    ["/log/tile/0/000", "/log/tile/0/002.p/10", "/log/tile/1/000.p/2", "/log/tile/entries/002.p/3"],
)
async def test_tiles_and_bundles_partial_included_are_immutable(
    client: httpx.AsyncClient, path: str
) -> None:
    got = await client.get(path)
    assert got.status_code == 200
    assert got.headers["cache-control"] == "public, max-age=31536000, immutable"
