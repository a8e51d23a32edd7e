"""The checkpoint watcher: one per process, woken by its sequencer, and seeing what
another hub process signed by its one shared poll."""

import asyncio
from pathlib import Path

import pytest

from hub.documents.demo_data import demo_invoices
from hub.documents.service import DocumentInput
from hub.institutions import add_institution
from hub.services import Hub
from schema.watcher import checkpoint_watcher
from schema.websocket import Connections
from tests.schema.conftest import start_hub

HOSPITAL = "hosp-w"


async def test_a_checkpoint_signed_by_another_process_reaches_subscribers(
    database_url: str, tmp_path: Path
) -> None:
    here = await start_hub(database_url, tmp_path)
    there = await Hub.start(here.settings, run_migrations=False)  # another hub process
    try:
        await add_institution(here.db, HOSPITAL, "W", "hospital")
        watcher = checkpoint_watcher(here)
        watcher.poll_seconds = 0.01
        streams = [watcher.heads() for _ in range(3)]
        firsts = [await anext(s) for s in streams]
        body = demo_invoices(1, seed=9)[0]
        doc = DocumentInput("medical_invoice", f"{body['billCode']}-{body['billNumber']}", body)
        _, head = await there.documents.submit(HOSPITAL, [doc])
        # Waiting on the answer itself; the timeout only guards against a hang.
        seconds = [await asyncio.wait_for(anext(s), 30) for s in streams]
        assert {s.size for s in seconds} == {head.size} and head.size == firsts[0].size + 1
        reads = watcher.reads
        for stream in streams:
            await stream.aclose()
        assert watcher._poller is None  # no subscriber, no poll
        assert reads >= 1
    finally:
        await there.stop()
        await here.stop()


def test_connections_are_capped_per_client_and_in_total() -> None:
    connections = Connections(per_client=2, total=3)
    for client in ("a", "a", "b"):
        assert connections.refusal(client) is None
        connections.opened(client)
    assert connections.refusal("c") is not None  # the total
    connections.closed("b")
    assert connections.refusal("a") is not None  # a's own cap
    assert connections.refusal("c") is None


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_the_watcher_reads_nothing_while_nobody_subscribes(
    database_url: str, tmp_path: Path
) -> None:
    hub = await start_hub(database_url, tmp_path)
    try:
        watcher = checkpoint_watcher(hub)
        assert checkpoint_watcher(hub) is watcher
        assert watcher.reads == 0 and watcher._poller is None
    finally:
        await hub.stop()
