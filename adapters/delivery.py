"""The delivery loop: outbox -> hub in batches, until stopped.

Each round sends the oldest queued documents (signed, when a key is given) and settles
every one by its result: CREATED or DUPLICATE is delivered, REJECTED is dead-lettered
with the hub's code and message. When the hub cannot be reached, is busy or refuses the
token, nothing is settled: the loop backs off (exponential, capped, jittered) and tries
the same documents again, so a document leaves the queue only on the hub's word. A
request refused as a whole is retried in halves until the one document at fault is
found and dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import orjson

from adapters.hub_client import (
    MAX_BATCH,
    HubAuthError,
    HubCallError,
    HubClient,
    HubProtocolError,
    HubRequestError,
    HubUnavailable,
)
from adapters.outbox import DeliveryState, Outbox, QueuedDocument
from adapters.signing import DocumentSigner

__all__ = ["Backoff", "Delivery", "Round"]

T = TypeVar("T")
log = logging.getLogger("adapters.delivery")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay after the n-th failure in a row: ``base * factor**(n-1)``, capped, with
    "equal jitter" (a random point in its upper half) so that adapters restarted together
    do not hammer the hub together."""

    base: float = 0.5
    cap: float = 60.0
    factor: float = 2.0

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        steps = min(max(failures - 1, 0), 64)  # beyond this the cap rules anyway
        ceiling = min(self.cap, self.base * self.factor**steps)
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


@dataclass(frozen=True, slots=True)
class Round:
    """What one round did. ``error`` is set when the batch was not settled."""

    sent: int = 0
    delivered: int = 0
    rejected: int = 0
    error: HubCallError | None = None

    @property
    def idle(self) -> bool:
        """Nothing was queued."""
        return self.sent == 0 and self.error is None


class Delivery:
    """Delivers ``outbox`` to the hub through ``client``."""

    def __init__(
        self,
        outbox: Outbox,
        client: HubClient,
        *,
        signer: DocumentSigner | None = None,
        batch_size: int = 100,
        backoff: Backoff | None = None,
        poll_interval: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1-{MAX_BATCH}")
        self.outbox = outbox
        self.client = client
        self.signer = signer
        self.batch_size = batch_size
        self.backoff = backoff or Backoff()
        # Other processes (``hub adapter hl7 FILE``) may fill the outbox without waking us.
        self.poll_interval = poll_interval
        self._rng = rng or random.Random()
        self._size = batch_size
        self._failures = 0
        # Documents this Delivery saw the hub reject (dead-lettered), for a file
        # command's exit code.
        self.rejected = 0
        previous = outbox.delivery_state()
        self._last_success = previous.last_success_at if previous else None
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    def wake(self) -> None:
        """New documents are queued: deliver now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the current round and return from run()."""
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        """Deliver until stop(); never raises for hub trouble, only backs off."""
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                outcome = await self.deliver_once()
            except sqlite3.OperationalError as error:
                # The outbox file stayed locked past its busy timeout (another process
                # holds it, or the disk is full): what is queued stays queued; try again.
                self._failures += 1
                log.warning("the outbox is unavailable (%d in a row): %s", self._failures, error)
                await self._pause(self.backoff.delay(self._failures, self._rng))
                continue
            if outcome.error is not None:
                await self._pause(self._delay(outcome.error))
            elif outcome.idle:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    async def drain(self, timeout: float) -> bool:
        """Deliver until nothing is queued (True) or ``timeout`` seconds pass (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            outcome = await self.deliver_once()
            if outcome.idle:
                return True
            if outcome.error is not None:
                delay = self._delay(outcome.error)
                if loop.time() + delay > deadline:
                    return False
                await asyncio.sleep(delay)
            elif loop.time() > deadline:
                return False

    async def deliver_once(self) -> Round:
        """One batch: send it, settle what the hub answered."""
        batch = await self._outbox(lambda: self.outbox.next_batch(self._size))
        if not batch:
            return Round()
        # Off the loop: parsing and signing 500 bodies takes tens of milliseconds, which
        # would hold up every ACK (the signing library lets other threads run meanwhile).
        documents = await asyncio.to_thread(lambda: [self._document(item) for item in batch])
        await self._outbox(lambda: self.outbox.record_attempt([item.seq for item in batch]))
        try:
            results = await self.client.submit_documents(documents)
            for item, result in zip(batch, results, strict=True):
                if result.id != item.id:
                    raise HubProtocolError(
                        f"hub answered for {result.id!r} where {item.id!r} was sent"
                    )
        except HubRequestError as error:
            return await self._refused_whole(batch, error)
        except HubCallError as error:
            return await self._failed(len(batch), error)
        delivered = [
            (item.seq, result.status, result.leaf_index)
            for item, result in zip(batch, results, strict=True)
            if result.delivered
        ]
        rejected = [
            (item.seq, result.error_code or "REJECTED", result.error_message or "")
            for item, result in zip(batch, results, strict=True)
            if not result.delivered
        ]
        await self._outbox(lambda: self.outbox.mark_delivered(delivered))
        if rejected:
            await self._outbox(lambda: self.outbox.mark_dead(rejected))
            self.rejected += len(rejected)
            for seq, code, message in rejected:
                log.warning("hub rejected outbox item %d: %s: %s", seq, code, message)
        self._failures = 0
        self._size = min(self.batch_size, self._size * 2)
        self._last_success = _now()
        await self._record("ok", f"delivered {len(delivered)}, rejected {len(rejected)}")
        return Round(sent=len(batch), delivered=len(delivered), rejected=len(rejected))

    async def _outbox(self, call: Callable[[], T]) -> T:
        """``call`` (outbox methods) on the loop if the outbox is free, else in a thread."""
        done, result = self.outbox.try_now(call)
        if done:
            return cast(T, result)
        return await asyncio.to_thread(call)

    def _document(self, item: QueuedDocument) -> dict[str, Any]:
        document: dict[str, Any] = {
            "type": item.type,
            "id": item.id,
            "body": orjson.loads(item.body),
        }
        if item.issued_at is not None:
            document["issuedAt"] = item.issued_at
        if item.supersedes is not None:
            document["supersedes"] = item.supersedes
        if self.signer is not None:
            document["signature"] = self.signer.sign_canonical(item.body)
        return document

    async def _refused_whole(self, batch: list[QueuedDocument], error: HubRequestError) -> Round:
        if len(batch) > 1:
            # Halve until the document at fault travels alone; the others go through.
            self._size = max(1, len(batch) // 2)
            log.warning("hub refused a batch of %d (%s); retrying in halves", len(batch), error)
            return Round(sent=len(batch))
        item = batch[0]
        await self._outbox(lambda: self.outbox.mark_dead([(item.seq, error.code, str(error))]))
        self.rejected += 1
        log.warning("hub refused outbox item %d on its own: %s", item.seq, error)
        return Round(sent=1, rejected=1)

    async def _failed(self, size: int, error: HubCallError) -> Round:
        self._failures += 1
        kind = {
            HubUnavailable: "unavailable",
            HubAuthError: "auth",
        }.get(type(error), "protocol")
        if kind == "unavailable":
            # An outage (HTTP 503/429, UNAVAILABLE, RATE_LIMITED, unreachable): nothing
            # is wrong with the documents or the protocol; they wait in the outbox.
            log.warning(
                "hub unavailable (%d in a row): %s; %d documents stay queued, retrying"
                " with backoff",
                self._failures,
                error,
                size,
                extra={"outage": True, "code": error.code},
            )
        else:
            log.warning(
                "delivery of %d documents failed (%s, %d in a row): %s",
                size,
                kind,
                self._failures,
                error,
            )
        await self._record(kind, str(error))
        return Round(error=error)

    def _delay(self, error: HubCallError) -> float:
        delay = self.backoff.delay(self._failures, self._rng)
        if isinstance(error, HubUnavailable) and error.retry_after is not None:
            delay = max(delay, min(error.retry_after, self.backoff.cap))
        return delay

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _record(self, kind: str, message: str) -> None:
        state = DeliveryState(
            kind=kind,
            message=message,
            at=_now(),
            failures=self._failures,
            last_success_at=self._last_success,
        )
        try:
            await self._outbox(lambda: self.outbox.set_delivery_state(state))
        except Exception:  # the status line must never stop delivery
            log.exception("could not record the delivery state")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
