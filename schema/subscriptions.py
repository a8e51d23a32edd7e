"""Subscription `checkpoints`: each newly signed checkpoint, starting with the current one."""

from collections.abc import AsyncGenerator

import strawberry
from strawberry.types import Info

from schema.claims import ClaimSubscriptions
from schema.permissions import context
from schema.types import Checkpoint
from schema.watcher import checkpoint_watcher


@strawberry.type
class Subscription(ClaimSubscriptions):
    @strawberry.subscription(description="The latest checkpoint, then each larger one")
    async def checkpoints(self, info: Info) -> AsyncGenerator[Checkpoint, None]:
        async for head in checkpoint_watcher(context(info).hub).heads():
            yield Checkpoint.of(head)
