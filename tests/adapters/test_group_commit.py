"""Group commit for the outbox: shared transactions, failures, and a busy file."""

import asyncio
import sqlite3
from functools import partial
from pathlib import Path

import pytest

from adapters.group_commit import GroupCommit
from adapters.outbox import Enqueued, NewDocument, Outbox
from hub.documents.demo_data import demo_invoices
from hub.documents.invoice import INVOICE_TYPE, invoice_document_id


def doc(key: str, body: dict) -> NewDocument:
    return NewDocument(key, INVOICE_TYPE, invoice_document_id(body), body, "test")


class CountingOutbox(Outbox):
    """Records the size of every enqueue transaction."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.transactions: list[int] = []

    def enqueue(  # type: ignore[override]
        self, items: list[NewDocument], *, busy_timeout: float | None = None
    ) -> list[Enqueued]:
        self.transactions.append(len(items))
        return super().enqueue(items, busy_timeout=busy_timeout)


async def test_concurrent_senders_share_transactions_and_get_their_own_results(
    tmp_path: Path,
) -> None:
    outbox = CountingOutbox(tmp_path / "outbox.db")
    commits = GroupCommit(outbox)
    bodies = demo_invoices(40, seed=3)
    documents = [doc(f"k{n}", body) for n, body in enumerate(bodies)]
    # the same key and content twice, and a key reused for other content
    documents += [doc("k0", bodies[0]), doc("k1", bodies[2])]
    results = await asyncio.gather(*(commits.enqueue([d]) for d in documents))
    statuses = [result.status for (result,) in results]
    assert statuses == ["new"] * 40 + ["duplicate", "conflict"]
    assert [result.seq for (result,) in results[:40]] == sorted(r.seq for (r,) in results[:40])
    assert results[40][0].seq == results[0][0].seq
    # all arrived before the first commit began: one transaction for the lot
    assert outbox.transactions == [42]
    assert outbox.counts().queued == 40
    # once idle, a lone message is committed at once again
    (late,) = await commits.enqueue([doc("late", demo_invoices(41, seed=3)[40])])
    assert late.status == "new" and outbox.transactions[-1] == 1
    outbox.close()


async def test_a_failed_commit_fails_every_waiter_and_the_next_one_works(tmp_path: Path) -> None:
    outbox = CountingOutbox(tmp_path / "outbox.db")
    commits = GroupCommit(outbox)
    bodies = demo_invoices(3, seed=4)
    outbox.close()  # every transaction now fails
    attempts = await asyncio.gather(
        *(commits.enqueue([doc(f"k{n}", b)]) for n, b in enumerate(bodies)),
        return_exceptions=True,
    )
    assert all(isinstance(attempt, Exception) for attempt in attempts)
    reopened = Outbox(tmp_path / "outbox.db")
    commits.outbox = reopened
    (result,) = await commits.enqueue([doc("k0", bodies[0])])
    assert result.status == "new"
    assert reopened.counts().queued == 1
    reopened.close()


async def test_a_transaction_holds_at_most_max_items(tmp_path: Path) -> None:
    outbox = CountingOutbox(tmp_path / "outbox.db")
    commits = GroupCommit(outbox, max_items=10)
    bodies = demo_invoices(31, seed=5)
    await asyncio.gather(*(commits.enqueue([doc(f"k{n}", b)]) for n, b in enumerate(bodies)))
    assert max(outbox.transactions) <= 10
    assert sum(outbox.transactions) == 31
    outbox.close()


async def test_an_outbox_held_elsewhere_is_waited_for_off_the_loop(tmp_path: Path) -> None:
    # Another process (hub adapter hl7, say) holds the write lock: the commit on the loop
    # gives way at once, and the messages are committed in a thread once it lets go.
    outbox = Outbox(tmp_path / "outbox.db")
    commits = GroupCommit(outbox, busy_timeout=5.0)
    other = sqlite3.connect(tmp_path / "outbox.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    assert outbox.try_now(partial(outbox.enqueue, [doc("k0", demo_invoices(1, seed=6)[0])])) == (
        False,
        None,
    )
    waiting = asyncio.ensure_future(commits.enqueue([doc("k0", demo_invoices(1, seed=6)[0])]))
    for _ in range(20):
        await asyncio.sleep(0)  # the loop keeps running while the commit waits
    assert not waiting.done()
    other.execute("ROLLBACK")
    (result,) = await asyncio.wait_for(waiting, 10)
    assert result.status == "new" and outbox.counts().queued == 1
    other.close()
    outbox.close()


async def test_an_outbox_busy_in_another_thread_is_not_waited_for_on_the_loop(
    tmp_path: Path,
) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    body = demo_invoices(1, seed=7)[0]
    with outbox._lock:  # the delivery thread reading a batch, say
        assert outbox.try_now(partial(outbox.enqueue, [doc("k0", body)])) == (False, None)
    assert outbox.counts().queued == 0
    done, results = outbox.try_now(partial(outbox.enqueue, [doc("k0", body)]))
    assert done and results is not None and results[0].status == "new"
    assert outbox.counts().queued == 1
    outbox.close()


async def test_a_free_outbox_is_committed_without_a_thread_hop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hop to a thread and back is what an ACK waited for under load, not the disk.
    async def no_thread(*args: object, **kwargs: object) -> None:
        raise AssertionError("committed through a thread")

    monkeypatch.setattr(asyncio, "to_thread", no_thread)
    outbox = Outbox(tmp_path / "outbox.db")
    commits = GroupCommit(outbox)
    bodies = demo_invoices(5, seed=8)
    results = await asyncio.gather(
        *(commits.enqueue([doc(f"k{n}", b)]) for n, b in enumerate(bodies))
    )
    assert [r.status for (r,) in results] == ["new"] * 5 and outbox.counts().queued == 5
    outbox.close()


async def test_a_message_read_in_the_same_turn_of_the_loop_joins_the_commit(
    tmp_path: Path,
) -> None:
    outbox = CountingOutbox(tmp_path / "outbox.db")
    commits = GroupCommit(outbox)
    first, second = (doc(f"k{n}", b) for n, b in enumerate(demo_invoices(2, seed=9)))

    async def one_turn_later() -> list[Enqueued]:
        await asyncio.sleep(0)  # another connection's data, read in the next turn
        return await commits.enqueue([second])

    await asyncio.gather(commits.enqueue([first]), one_turn_later())
    assert outbox.transactions == [2]
    outbox.close()
