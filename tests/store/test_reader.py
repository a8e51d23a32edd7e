"""The read side of storage (hub.store.reader): each dialect's driver answers the same
reads with the same rows, off the writer, and the ledger reads only through it."""

import sqlite3
from pathlib import Path

import pytest

from hub.ledger.note import generate_signer_key, parse_signer_key
from hub.ledger.sequencer import Sequencer
from hub.ledger.storage import TileReader, read_bundle, read_checkpoint, read_leaf_data, read_tile
from hub.ledger.tiles import tile_key
from hub.ledger.tree import inclusion_proof, leaf_hash
from hub.store.db import Database, migrate
from hub.store.reader import PostgresReader, SqliteReader, SqlReader
from tests.ledger.appender import Entries

ORIGIN = "test.example/reader"


async def _grow(db: Database, count: int) -> list[bytes]:
    signer = parse_signer_key(generate_signer_key(ORIGIN)[0])
    seq = Sequencer(db, signer, ORIGIN)
    await seq.ensure_head()
    entries = [f"entry {i}".encode() for i in range(count)]
    await seq.submit(Entries(entries))
    return entries


async def test_each_database_reads_through_the_driver_of_its_dialect(
    db: Database, backend: str
) -> None:
    expected = PostgresReader if backend == "postgres" else SqliteReader
    assert type(db.reader) is expected


async def test_the_ledger_reads_the_same_rows_through_the_reader_as_in_a_transaction(
    db: Database,
) -> None:
    entries = await _grow(db, 300)
    async with db.transaction() as sql:
        in_transaction = await read_checkpoint(sql)
    for source in (db, db.reader):
        assert await read_checkpoint(source) == in_transaction
        assert in_transaction is not None and in_transaction.size == 300
        assert await read_leaf_data(source, 257) == entries[257]
        width, _ = await read_bundle(source, 1) or (0, b"")
        assert width == 300 - 256
        width, blob = await read_tile(source, 0, 1) or (0, b"")
        assert width == 44 and blob.startswith(b"".join(map(leaf_hash, entries[256:])))
        assert await read_tile(source, 2, 0) is None  # a tree of 300 has no level-2 tile
    assert await read_checkpoint(db.reader, 299) is None  # one batch: sizes 0 and 300


async def test_fetch_tiles_returns_only_stored_rows_and_nothing_for_no_keys(
    db: Database,
) -> None:
    await _grow(db, 10)
    rows = await db.reader.fetch_tiles([tile_key(0, 0), tile_key(0, 7), tile_key(5, 0)])
    assert [(int(k), int(w)) for k, w, _ in rows] == [(tile_key(0, 0), 10)]
    assert await db.reader.fetch_tiles([]) == []


async def test_proofs_from_the_reader_match_the_reference_tree(db: Database) -> None:
    entries = await _grow(db, 600)
    hashes = [leaf_hash(e) for e in entries]
    tiles = TileReader(db.reader, cache_tiles=0)
    for index in (0, 255, 256, 599):
        assert await tiles.inclusion_proof(index, 600) == inclusion_proof(hashes, index)


async def test_the_sqlite_reader_sees_each_commit_and_never_writes(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/hub.db"
    await migrate(url)
    db = Database(url)
    await db.open()
    try:
        assert await read_checkpoint(db.reader) is None  # opened before anything is signed
        await _grow(db, 3)
        head = await read_checkpoint(db.reader)
        assert head is not None and head.size == 3
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await db.reader.fetch("DELETE FROM ledger_checkpoints")
        assert await read_checkpoint(db.reader) == head
    finally:
        await db.close()


async def test_an_in_memory_database_reads_on_its_own_connection() -> None:
    url = "sqlite://:memory:"
    db = Database(url)
    await db.open()
    try:
        assert isinstance(db.reader, SqlReader)
        await db.sql.execute("CREATE TABLE ledger_tiles (id INTEGER, width INTEGER, hashes BLOB)")
        await db.sql.execute("INSERT INTO ledger_tiles VALUES (?, ?, ?)", [5, 1, b"h"])
        assert [tuple(r) for r in await db.reader.fetch_tiles([5, 6])] == [(5, 1, b"h")]
    finally:
        await db.close()
