"""Reads of the signed checkpoint on the API's hot paths, off the writer's connection
(see hub.documents.store.fetch)."""

from hub.db import Database
from hub.documents.store import fetch
from hub.ledger.storage import SignedHead

__all__ = ["fetch", "signed_head"]

_HEAD = "SELECT size, root, note FROM ledger_checkpoints ORDER BY size DESC LIMIT 1"
_AT_SIZE = "SELECT size, root, note FROM ledger_checkpoints WHERE size = ?"


async def signed_head(db: Database, size: int | None = None) -> SignedHead | None:
    """The latest signed checkpoint, or the one of ``size``; None if the log signed none."""
    rows = await fetch(db, _HEAD) if size is None else await fetch(db, _AT_SIZE, [size])
    if not rows:
        return None
    found, root, note = rows[0]
    return SignedHead(int(found), bytes(root), note)
