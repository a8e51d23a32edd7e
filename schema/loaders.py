"""DataLoaders: whatever a page of documents asks for costs one query (or one commit)."""

from collections.abc import Sequence
from typing import TYPE_CHECKING

from strawberry.dataloader import DataLoader

from hub.access.access_log import record_reads
from hub.institutions import InstitutionRecord, institutions_by_id

if TYPE_CHECKING:
    from schema.context import Context


def institution_loader(ctx: "Context") -> DataLoader[str, InstitutionRecord | None]:
    async def load(ids: Sequence[str]) -> list[InstitutionRecord | None]:
        return await institutions_by_id(ctx.hub.db, ids)

    return DataLoader(load_fn=load)


def access_loader(ctx: "Context") -> DataLoader[tuple[int, str], int]:
    """(row key, purpose) -> leaf index of the `access` leaf recording the read.

    All body reads of one request tick become one sequencer submission, so a page of
    100 bodies is one commit with 100 leaves, not 100 commits.
    """

    async def load(keys: Sequence[tuple[int, str]]) -> list[int]:
        assert ctx.principal is not None and ctx.principal.inst is not None
        reads = [(ctx.rows[pk], purpose) for pk, purpose in keys]
        return await record_reads(ctx.hub, ctx.principal.inst, reads, ctx.now())

    return DataLoader(load_fn=load)
