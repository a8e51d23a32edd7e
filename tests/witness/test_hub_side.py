"""The hub's side on both backends: offering checkpoints, storing cosignatures, serving
the newest witnessed checkpoint (witnesses in-process, over httpx's ASGI transport)."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from hub.app import create_app
from hub.documents.demo_data import DEMO_HOSPITALS, demo_invoices
from hub.documents.service import CREATED, DocumentInput
from hub.institutions import add_institution
from hub.ledger.cosignature import format_cosigner_key, generate_cosigner_key
from hub.ledger.note import format_verifier_key
from hub.ledger.policy import parse_policy
from hub.services import Hub
from hub.witness.server import Witness, create_witness_app
from hub.witness.state import WitnessState
from hub.witness.submitter import Witnessing
from tests.witness.processes import own_cosignature_check


@pytest.fixture
async def witnessed(hub: Hub, tmp_path: Path) -> AsyncIterator[tuple[Hub, list[str]]]:
    signers = [generate_cosigner_key(f"w{i}.example") for i in range(3)]
    vkeys = [format_cosigner_key(s.verifier) for s in signers]
    policy = parse_policy(
        f"log {hub.verifier_key}\n"
        + "".join(f"witness W{i} {v} http://w{i}.test\n" for i, v in enumerate(vkeys))
        + "group two 2 W0 W1 W2\nquorum two\n"
    )
    mounts: dict[str, httpx.AsyncBaseTransport] = {
        f"http://w{i}.test": httpx.ASGITransport(
            app=create_witness_app(
                Witness(s, [hub.signer.verifier], WitnessState(tmp_path / f"w{i}.db"))
            )
        )
        for i, s in enumerate(signers)
    }
    hub.witnesses = Witnessing(hub.db, hub.tiles, policy, mounts)
    hub.sequencer.observer = hub.witnesses.wake
    try:
        yield hub, vkeys
    finally:
        await hub.witnesses.stop()


async def test_checkpoints_are_offered_stored_and_served(
    witnessed: tuple[Hub, list[str]],
) -> None:
    hub, vkeys = witnessed
    assert hub.witnesses is not None
    app = create_app(hub=hub)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        before = await client.get("/log/checkpoint")
        assert before.status_code == 503 and before.headers["retry-after"].isdigit()
        policy = await client.get("/log/policy")
        assert policy.text == hub.witnesses.policy.text

        await hub.witnesses.start()
        hospital = DEMO_HOSPITALS[0]
        await add_institution(hub.db, hospital.id, hospital.name, "hospital")
        bodies = [b for b in demo_invoices(60, seed=3) if b["billCode"] == hospital.bill_code]
        docs = [
            DocumentInput("medical_invoice", f"{b['billCode']}-{b['billNumber']}", b)
            for b in bodies
        ]
        results, head = await hub.documents.submit(hospital.id, docs)
        assert {r.status for r in results} == {CREATED}
        await hub.witnesses.wait_cosigned(head.size, 3)

        got = await client.get("/log/checkpoint")
        assert got.status_code == 200
        assert got.text.startswith(head.note)
        assert own_cosignature_check(got.text, vkeys) == {f"w{i}.example" for i in range(3)}
        query = "{ checkpoint { treeSize witnessed cosignatures { witness at } } }"
        data = (await client.post("/graphql", json={"query": query})).json()["data"]
        assert data["checkpoint"]["treeSize"] == head.size
        assert data["checkpoint"]["witnessed"] is True
        assert sorted(c["witness"] for c in data["checkpoint"]["cosignatures"]) == [
            "w0.example",
            "w1.example",
            "w2.example",
        ]
        assert format_verifier_key(hub.signer.verifier) in hub.witnesses.policy.text


async def test_the_witnessed_checkpoint_is_found_below_many_short_ones(
    witnessed: tuple[Hub, list[str]],
) -> None:
    """One witness alone cosigning many newer checkpoints hides no older witnessed one."""
    from hub.ledger.cosignature import Cosignature
    from hub.ledger.storage import read_checkpoint
    from hub.witness.cosignatures import SCAN_SIZES, newest_witnessed, store_cosignatures

    hub, _ = witnessed
    assert hub.witnesses is not None
    w0, w1 = (w.key for w in list(hub.witnesses.policy.witnesses.values())[:2])
    head = await read_checkpoint(hub.db)
    assert head is not None
    await store_cosignatures(
        hub.db, head.size, [Cosignature(w0, 1, "a\n"), Cosignature(w1, 1, "b\n")]
    )
    for size in range(head.size + 1, head.size + SCAN_SIZES + 10):
        await store_cosignatures(hub.db, size, [Cosignature(w0, 2, "c\n")])
    found = await newest_witnessed(hub.db, hub.witnesses.policy)
    assert found is not None and found.size == head.size
