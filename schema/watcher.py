"""One watcher of the signed checkpoint per hub process, shared by every subscription.

A subscription waits on the watcher instead of reading the database itself. The watcher
is woken at once by this process's sequencer after each checkpoint it signs; checkpoints
signed by other hub processes (PostgreSQL, several pods) are seen by one small read a
second, made only while someone is subscribed.
"""

import asyncio
import logging
from collections.abc import AsyncGenerator
from typing import Final

from hub.ledger.storage import SignedHead, read_checkpoint
from hub.services import Hub

POLL_SECONDS: Final = 1.0
_KEY: Final = "graphql.checkpoint_watcher"
log = logging.getLogger(__name__)


class CheckpointWatcher:
    def __init__(self, hub: Hub, poll_seconds: float = POLL_SECONDS) -> None:
        self.hub = hub
        self.poll_seconds = poll_seconds
        self.head: SignedHead | None = None
        self.reads = 0  # database reads made, for tests and the bench
        self._changed = asyncio.Event()
        self._subscribers = 0
        self._poller: asyncio.Task[None] | None = None
        self._first_read = asyncio.Lock()
        hub.sequencer.listeners.append(self.signed)

    def signed(self, head: SignedHead) -> None:
        """A newer checkpoint is known: wake every subscriber."""
        if self.head is None or head.size > self.head.size:
            self.head = head
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    async def heads(self) -> AsyncGenerator[SignedHead, None]:
        """The latest checkpoint, then each larger one, for as long as the caller reads."""
        self._subscribers += 1
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll())
        try:
            async with self._first_read:  # subscribers arriving together read once
                if self.head is None:
                    await self._refresh()
            last = -1
            while True:
                changed, head = self._changed, self.head
                if head is not None and head.size > last:
                    last = head.size
                    yield head
                    continue
                await changed.wait()
        finally:
            self._subscribers -= 1
            if self._subscribers == 0 and self._poller is not None:
                self._poller.cancel()
                self._poller = None

    async def _refresh(self) -> None:
        self.reads += 1
        head = await read_checkpoint(self.hub.db)
        if head is not None:
            self.signed(head)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self._refresh()
            except Exception as exc:  # a database outage: subscribers wait, and see it end
                log.warning("could not read the latest checkpoint: %s", type(exc).__name__)


def checkpoint_watcher(hub: Hub) -> CheckpointWatcher:
    """The process's watcher for this hub, made on first use."""
    found = hub.extras.get(_KEY)
    if isinstance(found, CheckpointWatcher):
        return found
    made = CheckpointWatcher(hub)
    hub.extras[_KEY] = made
    return made
