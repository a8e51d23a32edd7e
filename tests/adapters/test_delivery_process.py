"""Delivery in a child process: it delivers, is woken, restarted, stopped, and never
outlives its parent or shows the token to other users of the machine."""

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from adapters.delivery_process import DeliveryProcess, DeliverySettings
from adapters.outbox import Outbox
from adapters.signing import DocumentSigner
from hub.documents.demo_data import demo_invoices
from tests.adapters.fakehub import FakeHub, FakeHubServer
from tests.adapters.test_delivery import doc
from tests.adapters.test_mllp import wait_until
from tests.pids import exited_within

TOKEN = FakeHub().token


def settings(outbox: Path, hub: FakeHubServer, **more: object) -> DeliverySettings:
    return DeliverySettings(outbox=str(outbox), hub=hub.url, token=TOKEN, **more)  # type: ignore[arg-type]


async def test_the_child_delivers_signed_documents_when_woken_and_stops_on_request(
    tmp_path: Path, hub: FakeHubServer
) -> None:
    signer = DocumentSigner.generate()
    key = tmp_path / "hospital.pem"
    key.write_bytes(signer.private_key_pem())
    hub.hub.public_key = signer.public_key()
    outbox = Outbox(tmp_path / "outbox.db")
    bodies = demo_invoices(30, seed=71)
    outbox.enqueue([doc(body) for body in bodies[:10]])
    child = DeliveryProcess(
        settings(tmp_path / "outbox.db", hub, key=str(key), batch_size=7, poll_interval=3600.0)
    )
    await child.start()
    pid = child.pid
    assert pid is not None
    # What was queued before it started goes at once.
    await wait_until(lambda: outbox.counts().delivered == 10)
    # Its next poll is an hour away: only the wake-up can deliver these.
    outbox.enqueue([doc(body) for body in bodies[10:]])
    child.wake()
    await wait_until(lambda: outbox.counts().delivered == 30)
    assert sum(hub.hub.created.values()) == 30 and hub.hub.statuses["REJECTED"] == 0
    await child.stop()
    assert child.pid is None and exited_within(pid, 0)
    outbox.close()


async def test_a_child_that_dies_is_started_again_and_delivers(
    tmp_path: Path, hub: FakeHubServer
) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    bodies = demo_invoices(8, seed=72)
    child = DeliveryProcess(settings(tmp_path / "outbox.db", hub))
    await child.start()
    first = child.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    await wait_until(lambda: child.pid not in (None, first))
    outbox.enqueue([doc(body) for body in bodies])
    child.wake()
    await wait_until(lambda: outbox.counts().delivered == 8)
    await child.stop()
    outbox.close()


async def test_the_token_is_in_neither_the_command_line_nor_the_environment(
    tmp_path: Path, hub: FakeHubServer
) -> None:
    Outbox(tmp_path / "outbox.db").close()
    child = DeliveryProcess(settings(tmp_path / "outbox.db", hub))
    await child.start()
    pid = child.pid
    assert pid is not None
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert b"adapters.delivery_process" in cmdline
    assert TOKEN.encode() not in cmdline + environ
    await child.stop()


_PARENT = """
import asyncio, sys
from adapters.delivery_process import DeliveryProcess, DeliverySettings

async def main():
    child = DeliveryProcess(DeliverySettings(outbox=sys.argv[1], hub=sys.argv[2], token="t"))
    await child.start()
    print(child.pid, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_killed_parent_leaves_no_child_behind(tmp_path: Path, hub: FakeHubServer) -> None:
    Outbox(tmp_path / "outbox.db").close()
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(tmp_path / "outbox.db"), hub.url],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    line = await asyncio.to_thread(parent.stdout.readline)
    child_pid = int(line)
    assert not exited_within(child_pid, 0)
    parent.kill()
    parent.wait()
    # Its stdin closes with the parent: it ends its round and exits.
    assert await asyncio.to_thread(exited_within, child_pid, 30)
