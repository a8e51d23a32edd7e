"""Offering the log's newest checkpoint to every witness of the policy, in the background.

One task per witness: woken by each signed checkpoint (and by a slow timer, for what
other hub processes sign), it sends the newest checkpoint with a consistency proof from
the size the witness last cosigned, adopts the size a 409 returns, stores the cosignature
it gets back, and backs off while the witness fails. Nothing here is on a submit's path:
`wake` only sets events.
"""

import asyncio
import logging
import time
from dataclasses import dataclass, field

import httpx

from hub.errors import HubError
from hub.ledger.cosignature import verify_cosignatures
from hub.ledger.note import NoteError, b64encode
from hub.ledger.policy import Policy, PolicyWitness
from hub.ledger.storage import SignedHead, TileReader, read_checkpoint
from hub.store.db import Database
from hub.witness.cosignatures import newest_cosigned_by, store_cosignatures

log = logging.getLogger("hub.witness")

TIMEOUT = 5.0
BACKOFF_FIRST = 0.2
BACKOFF_MAX = 5.0
# At most this often per witness: under full ingest the log signs a checkpoint every few
# milliseconds, and offering each one (a consistency proof, the witness's verification
# and fsync, a cosignature row) costs the hub's CPU and its writer more than the quorum
# gains; the newest checkpoint is what is offered after the pause.
OFFER_INTERVAL = 0.25
# Other hub processes sign checkpoints this one never hears of: look for them this often.
REFRESH_SECONDS = 2.0
SIZE_TYPE = "text/x.tlog.size"


class WitnessFailed(HubError):
    """A witness did not cosign: unreachable, refusing, or answering out of protocol."""

    code = "WITNESS_FAILED"


@dataclass
class WitnessLink:
    """What the hub knows of one witness."""

    witness: PolicyWitness
    size: int | None = None  # the size it last cosigned, as far as we know
    cosigned: int = -1  # the newest size we hold its cosignature for
    failures: int = 0
    consecutive: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        assert self.witness.url is not None
        return self.witness.url.rstrip("/") + "/add-checkpoint"


class Witnessing:
    """The hub side of the witness protocol, for one policy."""

    def __init__(
        self,
        db: Database,
        tiles: TileReader,
        policy: Policy,
        mounts: dict[str, httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        self.db = db
        self.tiles = tiles
        self.policy = policy
        self.links = [WitnessLink(w) for w in policy.witnesses.values() if w.url]
        self.head_size = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self._mounts = mounts  # in-process witnesses (tests), by URL prefix
        self._changed = asyncio.Condition()

    def wake(self, *_: object) -> None:
        """A checkpoint was signed: have every witness offered the newest one."""
        for link in self.links:
            link.wake.set()

    async def start(self) -> None:
        if self._tasks:
            return
        self._client = httpx.AsyncClient(timeout=TIMEOUT, mounts=self._mounts)
        for link in self.links:
            key = link.witness.key
            newest = await newest_cosigned_by(self.db, key.name, key.key_id)
            if newest is not None:
                link.size = link.cosigned = newest
            link.wake.set()
            self._tasks.append(asyncio.create_task(self._run(link)))
        self._tasks.append(asyncio.create_task(self._refresh()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            self.wake()

    async def _run(self, link: WitnessLink) -> None:
        while True:
            await link.wake.wait()
            link.wake.clear()
            try:
                head = await read_checkpoint(self.db)
                if head is None:
                    continue
                self.head_size = max(self.head_size, head.size)
                if link.cosigned >= head.size:
                    continue
                await self._offer(link, head)
                link.consecutive = 0
                await asyncio.sleep(OFFER_INTERVAL)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a witness down or refusing: back off, try again
                link.failures += 1
                link.consecutive += 1
                log.warning(
                    "witness failed",
                    extra={"witness": link.witness.name, "reason": str(exc)[:200]},
                )
                delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (link.consecutive - 1))
                await asyncio.sleep(delay)
                link.wake.set()

    async def _offer(self, link: WitnessLink, head: SignedHead) -> None:
        assert self._client is not None
        for _ in range(3):  # a 409 tells us its size: one more try with that is enough
            old = link.size or 0
            if old > head.size:
                raise WitnessFailed(
                    f"the witness has cosigned size {old}, larger than this log's {head.size}"
                )
            proof = await self.tiles.consistency_proof(old, head.size) if old else []
            body = f"old {old}\n" + "".join(b64encode(h) + "\n" for h in proof) + "\n" + head.note
            started = time.perf_counter()
            response = await self._client.post(link.url, content=body.encode())
            if response.status_code == 409 and response.headers.get("content-type", "").startswith(
                SIZE_TYPE
            ):
                text = response.text.strip()
                if not text.isdigit() or int(text) == old:
                    raise WitnessFailed(f"409 for size {head.size} at our size {old}")
                link.size = int(text)
                continue
            if response.status_code != 200:
                raise WitnessFailed(f"HTTP {response.status_code}: {response.text[:100]!r}")
            try:
                found = verify_cosignatures(head.note + response.text, [link.witness.key])
            except NoteError as exc:
                raise WitnessFailed(f"bad cosignature: {exc}") from None
            if not found:
                raise WitnessFailed("the answer carries no cosignature by the witness's key")
            await store_cosignatures(self.db, head.size, found)
            link.size = link.cosigned = head.size
            async with self._changed:
                self._changed.notify_all()
            log.info(
                "witness cosigned",
                extra={
                    "witness": link.witness.name,
                    "size": head.size,
                    "seconds": round(time.perf_counter() - started, 4),
                },
            )
            return
        raise WitnessFailed("the witness keeps changing its size")

    async def wait_cosigned(self, size: int, count: int) -> None:
        """Until ``count`` witnesses have cosigned a checkpoint of ``size`` or larger."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: sum(link.cosigned >= size for link in self.links) >= count
            )

    def stats(self) -> list[tuple[str, int, int]]:
        """(witness, lag in entries behind the newest head seen, failures) per witness."""
        return [
            (
                link.witness.name,
                max(0, self.head_size - max(link.cosigned, 0)),
                link.failures,
            )
            for link in self.links
        ]
