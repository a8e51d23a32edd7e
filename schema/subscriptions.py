"""Subscription `checkpoints`: each newly signed checkpoint, starting with the current one."""

import asyncio
from collections.abc import AsyncGenerator

import strawberry
from strawberry.types import Info

from hub.ledger.storage import read_checkpoint
from schema.claims import ClaimSubscriptions
from schema.permissions import context
from schema.types import Checkpoint

# Polling the database keeps every hub process's subscribers in step, whichever
# process signed; one small primary-key read a second per subscriber.
POLL_SECONDS = 1.0


@strawberry.type
class Subscription(ClaimSubscriptions):
    @strawberry.subscription(description="The latest checkpoint, then each larger one")
    async def checkpoints(self, info: Info) -> AsyncGenerator[Checkpoint, None]:
        db = context(info).hub.db
        last = -1
        while True:
            head = await read_checkpoint(db)
            if head is not None and head.size > last:
                last = head.size
                yield Checkpoint.of(head)
            await asyncio.sleep(POLL_SECONDS)
