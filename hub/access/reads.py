"""Reads of the signed checkpoint on the API's hot paths, off the writer's connection
(see hub.documents.store.fetch)."""

from collections.abc import Sequence
from typing import Any

from hub.documents.store import fetch
from hub.store.db import Database
from hub.store.ledger import SignedHead, read_checkpoint_with

__all__ = ["fetch", "signed_head"]


async def signed_head(db: Database, size: int | None = None) -> SignedHead | None:
    """The latest signed checkpoint, or the one of ``size``; None if the log signed none."""

    async def read(query: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        return await fetch(db, query, params)

    return await read_checkpoint_with(read, size)
