"""Change one byte of the stored ledger and the audit fails naming the row that changed."""

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from hub.audit import verify_ledger
from hub.documents.demo_data import DEMO_HOSPITALS, demo_invoices
from hub.documents.service import CREATED, DocumentInput, DocumentService
from hub.errors import LedgerCorrupt
from hub.institutions import add_institution
from hub.keys import create_log_key, load_log_signer
from hub.ledger.note import Verifier
from hub.ledger.sequencer import Sequencer
from hub.ledger.storage import BUNDLE_SIZE
from hub.ledger.tiles import tile_key
from hub.store.db import Database
from tests.ledger.appender import hub_ledger_verify

ORIGIN = "test.example/log"
DOCUMENTS = 1000
CHUNK = 25  # documents per submission; each round submits one chunk per hospital at once

Undo = Callable[[], Awaitable[None]]
# Changes one value in one row; returns the start of the audit's expected message and an undo.
Tamper = Callable[[Database], Awaitable[tuple[str, Undo]]]


async def build_ledger(db: Database, key: Path) -> None:
    for h in DEMO_HOSPITALS:
        await add_institution(db, h.id, h.name, "hospital")
    service = DocumentService(db, Sequencer(db, load_log_signer(key), ORIGIN))
    issuer = {h.bill_code: h.id for h in DEMO_HOSPITALS}
    queues: dict[str, list[DocumentInput]] = {}
    for body in demo_invoices(DOCUMENTS):
        doc_id = f"{body['billCode']}-{body['billNumber']}"
        queues.setdefault(issuer[body["billCode"]], []).append(
            DocumentInput(type="medical_invoice", id=doc_id, body=body)
        )
    while any(queues.values()):
        # The hospitals submit concurrently: several group-committed checkpoints result.
        rounds = [(who, docs[:CHUNK]) for who, docs in queues.items() if docs]
        queues = {who: docs[CHUNK:] for who, docs in queues.items()}
        for results, _ in await asyncio.gather(*(service.submit(w, d) for w, d in rounds)):
            assert [r.status for r in results] == [CREATED] * len(results)


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


async def _change(
    db: Database, table: str, column: str, key: str, row: int, change: Callable[[Any], Any]
) -> Undo:
    rows = await db.sql.fetch(f"SELECT {column} FROM {table} WHERE {key} = ?", [row])
    original = rows[0][0]
    update = f"UPDATE {table} SET {column} = ? WHERE {key} = ?"
    await db.sql.execute(update, [change(original), row])

    async def undo() -> None:
        await db.sql.execute(update, [original, row])

    return undo


async def _flip(db: Database, table: str, column: str, key: str, row: int, at: int) -> Undo:
    return await _change(db, table, column, key, row, lambda value: flip(bytes(value), at))


async def tamper_leaf(db: Database) -> tuple[str, Undo]:
    """Flip a byte inside leaf 517 (entry 5 of bundle 2), leaving the framing intact."""
    rows = await db.sql.fetch("SELECT data FROM ledger_bundles WHERE id = 2")
    data, at = bytes(rows[0][0]), 0
    for _ in range(5):
        at += 2 + int.from_bytes(data[at : at + 2], "big")
    length = int.from_bytes(data[at : at + 2], "big")
    undo = await _flip(db, "ledger_bundles", "data", "id", 2, at + 2 + length // 2)
    return f"ledger_bundles row id=2 (leaf {2 * BUNDLE_SIZE + 5})", undo


async def tamper_leaf_hash(db: Database) -> tuple[str, Undo]:
    """Flip a byte of leaf 300's hash in the bottom row of tile 0/1."""
    undo = await _flip(db, "ledger_tiles", "hashes", "id", tile_key(0, 1), 44 * 32 + 7)
    return f"ledger_tiles row id={tile_key(0, 1)} (tile 0/1)", undo


async def tamper_inner_hash(db: Database) -> tuple[str, Undo]:
    """Flip a byte of the top node stored in tile 0/0 (its leaves are intact)."""
    undo = await _flip(db, "ledger_tiles", "hashes", "id", tile_key(0, 0), 254 * 32 + 31)
    return f"ledger_tiles row id={tile_key(0, 0)} (tile 0/0)", undo


async def tamper_upper_tile(db: Database) -> tuple[str, Undo]:
    """Flip a byte of tile 1/0, the partial tile over the roots of the level-0 tiles."""
    undo = await _flip(db, "ledger_tiles", "hashes", "id", tile_key(1, 0), 40)
    return f"ledger_tiles row id={tile_key(1, 0)} (tile 1/0)", undo


async def tamper_body(db: Database) -> tuple[str, Undo]:
    """Change one digit of a document's body (its salted digest no longer matches)."""
    rows = await db.sql.fetch("SELECT id FROM documents WHERE leaf_index = 700")
    row_id = int(rows[0][0])

    def change(body: str) -> str:
        at = body.index('"total":"') + len('"total":"')
        return body[:at] + str((int(body[at]) + 1) % 10) + body[at + 1 :]

    undo = await _change(db, "documents", "body", "id", row_id, change)
    return f"documents row id={row_id}: body does not match its digest", undo


async def _middle_checkpoint(db: Database) -> int:
    sizes = [int(s) for (s,) in await db.sql.fetch("SELECT size FROM ledger_checkpoints")]
    assert len(sizes) > 3, "the ledger should have been built in several commits"
    return sorted(sizes)[len(sizes) // 2]


async def tamper_root(db: Database) -> tuple[str, Undo]:
    size = await _middle_checkpoint(db)
    undo = await _flip(db, "ledger_checkpoints", "root", "size", size, 0)
    return f"ledger_checkpoints row size={size}: root does not match the leaves", undo


async def tamper_note(db: Database) -> tuple[str, Undo]:
    """Change one character of a checkpoint's signature line."""
    size = await _middle_checkpoint(db)

    def change(note: str) -> str:
        at = note.rindex(" ") + 10  # inside base64(keyID || signature)
        return note[:at] + ("A" if note[at] != "A" else "B") + note[at + 1 :]

    undo = await _change(db, "ledger_checkpoints", "note", "size", size, change)
    return f"ledger_checkpoints row size={size}: note does not verify", undo


TAMPERS: dict[str, Tamper] = {
    "leaf": tamper_leaf,
    "leaf hash": tamper_leaf_hash,
    "inner hash": tamper_inner_hash,
    "upper tile": tamper_upper_tile,
    "document body": tamper_body,
    "checkpoint root": tamper_root,
    "checkpoint note": tamper_note,
}
# Run through the command too (one process each, so only the cases the issue names).
CLI_CASES = {"leaf", "leaf hash", "document body"}


async def _audit_error(db: Database, verifier: Verifier) -> str:
    with pytest.raises(LedgerCorrupt) as caught:
        await verify_ledger(db, verifier, ORIGIN)
    return str(caught.value)


async def test_each_tampered_row_is_named(db: Database, database_url: str, tmp_path: Path) -> None:
    key = tmp_path / "log.key"
    create_log_key(key, ORIGIN)
    verifier = load_log_signer(key).verifier
    await build_ledger(db, key)
    report = await verify_ledger(db, verifier, ORIGIN)
    assert (report.size, report.documents) == (DOCUMENTS, DOCUMENTS)
    for case, tamper in TAMPERS.items():
        expected, undo = await tamper(db)
        message = await _audit_error(db, verifier)
        assert message.startswith(expected), f"{case}: {message!r}"
        if case in CLI_CASES:
            result = hub_ledger_verify(database_url, key, tmp_path)
            assert result.returncode != 0
            assert result.stdout == ""
            assert result.stderr.splitlines()[-1] == f"hub: error: {message}", case
        await undo()
        # Put back, the ledger verifies again: the audit blamed exactly this change.
        assert (await verify_ledger(db, verifier, ORIGIN)).size == DOCUMENTS
