"""Group commit: one integrating transaction appends every pending submission at once.

Submissions that arrive while a transaction is in flight wait for the next one, so under
load each commit (leaves + tiles + signed checkpoint) carries many submissions, and a
caller is answered only once its entries are covered by a stored, signed checkpoint.

The transaction runs where the database's driver puts it (`Database.write_transaction`),
or, given an `Integrator`, in another process: then what `stage` decides travels back as
each submission's `outcome` (a `Portable` submission).
"""

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from hub.ledger.note import Signer
from hub.ledger.storage import (
    SignedHead,
    append_entries,
    lock_ledger,
    read_checkpoint,
    store_checkpoint,
)
from hub.ledger.tree import EMPTY_ROOT, leaf_hash
from hub.store.db import Database, Sql


@dataclass
class Staged:
    """What one submission adds to the integrating transaction."""

    entries: list[bytes] = field(default_factory=list)
    # Each entry's RFC 9162 leaf hash, when computed before the transaction (else empty).
    leaf_hashes: list[bytes] = field(default_factory=list)
    # (sql, rows) run with execute_many after every submission of the group has staged,
    # the rows of one statement from all submissions together.
    writes: list[tuple[str, Sequence[Sequence[Any]]]] = field(default_factory=list)


@dataclass(frozen=True)
class Integrated:
    """What one committed integration did, for an observer (metrics)."""

    submissions: int
    entries: int
    seconds: float
    tree_size: int


class Submission(Protocol):
    async def stage(self, sql: Sql, first_index: int, group: dict[str, Any]) -> Staged:
        """Decide, under the ledger lock, what to append. Must not write; may read.

        `first_index` is the leaf index its first entry will get; `group` is scratch space
        shared by the submissions of one commit (so two of them can see each other).
        """
        ...


@runtime_checkable
class Portable(Submission, Protocol):
    """A submission that can be staged in another process and its decisions carried back."""

    def outcome(self) -> object:
        """What `stage` decided (results, leaf indexes), small and picklable."""
        ...

    def absorb(self, outcome: object) -> None:
        """Take in the `outcome` of this submission's copy that was staged elsewhere."""
        ...


GroupResult = tuple[SignedHead, list[Exception | None], int]


class Integrator(Protocol):
    depth: int  # groups it may be handed before the first is answered; kept in order

    async def integrate(self, submissions: Sequence[Portable]) -> tuple[GroupResult, list[object]]:
        """`append_group` over ``submissions`` in one committed transaction; also each
        submission's outcome, in order."""
        ...

    async def close(self) -> None: ...


async def _prefetch(sql: Sql, submissions: Sequence[Submission], group: dict[str, Any]) -> None:
    """Let each kind of submission read what all of its kind in the group need at once.

    A kind may define ``prefetch(sql, submissions, group)`` (a classmethod); its ``stage``
    must still work without it. Every read is a round trip that the group waits for.
    """
    kinds: dict[type, list[Submission]] = {}
    for submission in submissions:
        kinds.setdefault(type(submission), []).append(submission)
    for kind, same in kinds.items():
        prefetch = getattr(kind, "prefetch", None)
        if prefetch is not None:
            await prefetch(sql, same, group)


class Sequencer:
    def __init__(
        self,
        db: Database,
        signer: Signer,
        origin: str,
        observer: Callable[[Integrated], None] | None = None,
        integrator: Integrator | None = None,
    ) -> None:
        self.db = db
        self.signer = signer
        self.origin = origin
        self.observer = observer
        self.integrator = integrator
        # Groups integrating at once: an integrator keeps them in order, a transaction
        # here cannot start before the one before it has committed.
        self._depth = integrator.depth if integrator is not None else 1
        self._pending: list[tuple[Submission, asyncio.Future[SignedHead]]] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        # Called with each newly signed checkpoint (the subscriptions' watcher).
        self.listeners: list[Callable[[SignedHead], None]] = []

    async def submit(self, submission: Submission) -> SignedHead:
        future: asyncio.Future[SignedHead] = asyncio.get_running_loop().create_future()
        self._pending.append((submission, future))
        self._dispatch()
        return await future

    async def ensure_head(self) -> SignedHead:
        """The latest checkpoint, signing the empty tree's if the log has none yet."""

        async def work(sql: Sql) -> SignedHead:
            await lock_ledger(sql)
            head = await read_checkpoint(sql)
            if head is None:
                head = await store_checkpoint(sql, self.signer, self.origin, 0, EMPTY_ROOT)
            return head

        return await self.db.write_transaction(work)

    def _dispatch(self) -> None:
        if self._pending and len(self._in_flight) < self._depth:
            task = asyncio.create_task(self._run())
            self._in_flight.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._dispatch()

    async def _run(self) -> None:
        # The group is what is pending when the task starts, not when it was created:
        # everything that arrived in between rides along.
        group, self._pending = self._pending, []
        if not group:
            return
        try:
            await self._integrate(group)
        except BaseException as exc:
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise

    async def _integrate(self, group: list[tuple[Submission, asyncio.Future[SignedHead]]]) -> None:
        started = time.perf_counter()
        submissions = [submission for submission, _ in group]

        if self.integrator is not None and all(isinstance(s, Portable) for s in submissions):
            portable = [s for s in submissions if isinstance(s, Portable)]
            (head, refused, entries), outcomes = await self.integrator.integrate(portable)
            for submission, outcome in zip(portable, outcomes, strict=True):
                submission.absorb(outcome)
        else:

            async def work(sql: Sql) -> GroupResult:
                return await append_group(sql, self.signer, self.origin, submissions)

            head, refused, entries = await self.db.write_transaction(work)
        # Futures are set here, on the event loop: `work` may run on a database thread.
        for (_, future), error in zip(group, refused, strict=True):
            if future.done():
                continue
            if error is None:
                future.set_result(head)
            else:
                future.set_exception(error)
        for listener in self.listeners:
            listener(head)
        if self.observer is not None:  # after the answers: an observer never delays or fails one
            self.observer(Integrated(len(group), entries, time.perf_counter() - started, head.size))


async def append_group(
    sql: Sql, signer: Signer, origin: str, submissions: Sequence[Submission]
) -> GroupResult:
    """Stage every submission and append what they staged under one signed checkpoint.

    Returns the checkpoint, each submission's refusal (None when it was appended) and
    how many entries were appended.
    """
    await lock_ledger(sql)
    head = await read_checkpoint(sql)
    size = head.size if head else 0
    entries: list[bytes] = []
    hashes: list[bytes] = []
    # Rows by statement, in order: one execute_many per statement for the whole group,
    # since on PostgreSQL each is a round trip that holds up every caller in the group.
    writes: dict[str, list[Sequence[Any]]] = {}
    scratch: dict[str, Any] = {}
    refused: list[Exception | None] = []
    await _prefetch(sql, submissions, scratch)
    for submission in submissions:
        try:
            staged = await submission.stage(sql, size + len(entries), scratch)
        except Exception as exc:  # one bad submission must not sink the group
            refused.append(exc)
            continue
        entries.extend(staged.entries)
        if len(staged.leaf_hashes) == len(staged.entries):
            hashes.extend(staged.leaf_hashes)
        else:
            hashes.extend(leaf_hash(e) for e in staged.entries)
        for query, rows in staged.writes:
            writes.setdefault(query, []).extend(rows)
        refused.append(None)
    for query, rows in writes.items():
        await sql.execute_many(query, rows)
    if entries or head is None:
        new_size, root, _ = await append_entries(sql, size, entries, hashes)
        head = await store_checkpoint(sql, signer, origin, new_size, root)
    return head, refused, len(entries)
