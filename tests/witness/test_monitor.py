"""hub monitor's checks against a real hub's tiles (in-process), a forged view in between."""

import secrets
from collections.abc import AsyncIterator

import httpx
import pytest

from hub.app import create_app
from hub.documents.demo_data import DEMO_HOSPITALS, demo_invoices
from hub.documents.service import DocumentInput
from hub.institutions import add_institution
from hub.ledger.checkpoint import Checkpoint, format_checkpoint
from hub.ledger.note import sign_note
from hub.services import Hub
from hub.witness.monitor import Misbehaviour, Monitor


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the monitor reads HTTP only; the hub's storage is tested on both


class View:
    """The hub's answers, except /log/checkpoint when a test forges one."""

    def __init__(self, hub: Hub) -> None:
        self.app = httpx.ASGITransport(app=create_app(hub=hub))
        self.forged: str | None = None

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/log/checkpoint" and self.forged is not None:
            return httpx.Response(200, text=self.forged)
        return await self.app.handle_async_request(request)


async def _grow(hub: Hub, count: int, seed: int) -> int:
    hospital = DEMO_HOSPITALS[0]
    bodies = [
        b for b in demo_invoices(count * 12, seed=seed) if b["billCode"] == hospital.bill_code
    ]
    docs = [
        DocumentInput("medical_invoice", f"{b['billCode']}-{b['billNumber']}", b)
        for b in bodies[:count]
    ]
    _, head = await hub.documents.submit(hospital.id, docs)
    return head.size


@pytest.fixture
async def monitored(hub: Hub) -> AsyncIterator[tuple[Monitor, View]]:
    hospital = DEMO_HOSPITALS[0]
    await add_institution(hub.db, hospital.id, hospital.name, "hospital")
    view = View(hub)
    async with httpx.AsyncClient(transport=httpx.MockTransport(view.handle)) as client:
        yield Monitor(client, "http://hub.test/log", hub.signer.verifier, None), view


def _forge(hub: Hub, size: int) -> str:
    cp = Checkpoint(hub.settings.origin, size, secrets.token_bytes(32))
    return sign_note(format_checkpoint(cp), hub.signer)


async def test_the_monitor_follows_a_growing_log(hub: Hub, monitored: tuple[Monitor, View]) -> None:
    monitor, _ = monitored
    await _grow(hub, 300, seed=1)  # past one full tile and bundle
    assert await monitor.check(await monitor.fetch())
    size = await _grow(hub, 20, seed=2)
    assert await monitor.check(await monitor.fetch())
    assert monitor.last is not None and monitor.last.checkpoint.size == size
    assert not await monitor.check(await monitor.fetch())  # nothing new


@pytest.mark.parametrize("delta", [0, 5, -3], ids=["same-size", "larger", "smaller"])
async def test_a_forged_checkpoint_is_evidence(
    hub: Hub, monitored: tuple[Monitor, View], delta: int
) -> None:
    monitor, view = monitored
    size = await _grow(hub, 30, seed=3)
    assert await monitor.check(await monitor.fetch())
    forged_size = size + delta
    if delta > 0:  # the tiles exist; the signed root is another
        forged_size = await _grow(hub, delta, seed=4)
        assert forged_size > size
    view.forged = _forge(hub, forged_size)
    with pytest.raises(Misbehaviour) as found:
        await monitor.check(await monitor.fetch())
    assert found.value.kind == ("rollback" if delta < 0 else "fork")
    assert found.value.now == view.forged
