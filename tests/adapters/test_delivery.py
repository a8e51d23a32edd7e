"""The delivery loop: outbox to hub in order, retries, dead letters, backoff."""

import asyncio
import copy
import json
import random
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.delivery import Backoff, Delivery
from adapters.hub_client import (
    HubAuthError,
    HubCallError,
    HubClient,
    HubProtocolError,
    HubRequestError,
    HubUnavailable,
    token_from_file,
)
from adapters.outbox import NewDocument, Outbox, document_key
from adapters.signing import DocumentSigner, SigningKeyError, verify_signature
from hub.documents.demo_data import demo_invoices
from hub.documents.invoice import INVOICE_TYPE, invoice_document_id
from tests.adapters.fakehub import FakeHub, FakeHubServer

TOKEN = "hospital-token"
FAST = Backoff(base=0.01, cap=0.05)


def doc(body: dict[str, Any]) -> NewDocument:
    doc_id = invoice_document_id(body)
    return NewDocument(
        key=document_key(INVOICE_TYPE, doc_id, body),
        type=INVOICE_TYPE,
        id=doc_id,
        body=body,
        source="test",
        issued_at=body["issuedAt"],
    )


def asgi_client(hub: FakeHub, token: str | Callable[[], str] = TOKEN) -> HubClient:
    return HubClient("http://hub.test", token, transport=httpx.ASGITransport(app=hub.app()))


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db")
    yield box
    box.close()


# ----------------------------------------------------------------- delivery rounds


async def test_a_round_delivers_in_order_and_records_leaves(outbox: Outbox) -> None:
    hub = FakeHub()
    bodies = demo_invoices(7, seed=1)
    outbox.enqueue([doc(body) for body in bodies])
    async with asgi_client(hub) as client:
        delivery = Delivery(outbox, client, batch_size=3)
        rounds = [await delivery.deliver_once() for _ in range(4)]
    assert [r.sent for r in rounds] == [3, 3, 1, 0]
    assert rounds[-1].idle
    assert hub.batches == [[invoice_document_id(b) for b in bodies[i : i + 3]] for i in (0, 3, 6)]
    assert outbox.counts().delivered == 7
    record = outbox.document(doc(bodies[4]).key)
    assert record is not None and record["leafIndex"] == 4
    state = outbox.delivery_state()
    assert state is not None and state.kind == "ok"


async def test_conflicts_are_dead_lettered_with_the_hubs_reason(outbox: Outbox) -> None:
    hub = FakeHub()
    first, second = demo_invoices(2, seed=2)
    changed = copy.deepcopy(second)
    changed["checkCode"] = "ZZZZZZ"
    async with asgi_client(hub) as client:
        delivery = Delivery(outbox, client)
        outbox.enqueue([doc(first), doc(second)])
        await delivery.deliver_once()
        # the same bill again stays one outbox entry; a changed bill under its id is new
        statuses = [r.status for r in outbox.enqueue([doc(copy.deepcopy(first)), doc(changed)])]
        assert statuses == ["duplicate", "new"]
        round_ = await delivery.deliver_once()
    assert (round_.sent, round_.delivered, round_.rejected) == (1, 0, 1)
    assert hub.created[invoice_document_id(first)] == 1
    (letter,) = outbox.dead_letters()
    assert (letter.kind, letter.code, letter.document_id) == (
        "rejected",
        "CONFLICT",
        invoice_document_id(second),
    )
    assert "different body" in letter.reason


async def test_resending_an_anchored_document_counts_as_delivered(outbox: Outbox) -> None:
    hub = FakeHub()
    (body,) = demo_invoices(1, seed=3)
    async with asgi_client(hub) as client:
        await client.submit_documents([{"type": INVOICE_TYPE, "id": doc(body).id, "body": body}])
        outbox.enqueue([doc(body)])
        round_ = await Delivery(outbox, client).deliver_once()
    assert round_.delivered == 1
    assert hub.statuses["DUPLICATE"] == 1
    record = outbox.document(doc(body).key)
    assert record is not None and record["result"] == "DUPLICATE"


async def test_an_unavailable_hub_keeps_everything_queued(outbox: Outbox) -> None:
    hub = FakeHub(unavailable=True)
    outbox.enqueue([doc(body) for body in demo_invoices(3, seed=4)])
    async with asgi_client(hub) as client:
        delivery = Delivery(outbox, client, backoff=FAST)
        failed = await delivery.deliver_once()
        assert isinstance(failed.error, HubUnavailable)
        assert outbox.counts().queued == 3
        state = outbox.delivery_state()
        assert state is not None and (state.kind, state.failures) == ("unavailable", 1)
        hub.unavailable = False
        assert (await delivery.deliver_once()).delivered == 3
    assert outbox.counts().queued == 0
    record = outbox.document(doc(demo_invoices(1, seed=4)[0]).key)
    assert record is not None and record["attempts"] == 2


async def test_a_refused_token_waits_for_the_operator(outbox: Outbox, tmp_path: Path) -> None:
    hub = FakeHub()
    token_file = tmp_path / "token"
    token_file.write_text("expired\n")
    outbox.enqueue([doc(body) for body in demo_invoices(2, seed=5)])
    async with asgi_client(hub, token_from_file(token_file)) as client:
        delivery = Delivery(outbox, client, backoff=FAST)
        for _ in range(2):
            assert isinstance((await delivery.deliver_once()).error, HubAuthError)
        state = outbox.delivery_state()
        assert state is not None and (state.kind, state.failures) == ("auth", 2)
        assert outbox.counts().queued == 2
        token_file.write_text(TOKEN + "\n")  # fixed without a restart
        assert (await delivery.deliver_once()).delivered == 2


async def test_a_request_refused_whole_is_halved_to_the_document_at_fault(
    outbox: Outbox,
) -> None:
    bodies = demo_invoices(9, seed=6)
    poison = invoice_document_id(bodies[5])
    hub = FakeHub(poison_ids={poison})
    outbox.enqueue([doc(body) for body in bodies])
    async with asgi_client(hub) as client:
        delivery = Delivery(outbox, client, batch_size=8, backoff=FAST)
        for _ in range(30):
            if (await delivery.deliver_once()).idle:
                break
    counts = outbox.counts()
    assert (counts.delivered, counts.rejected, counts.queued) == (8, 1, 0)
    (letter,) = outbox.dead_letters()
    assert (letter.document_id, letter.code) == (poison, "BAD_INPUT")
    assert sorted(id for batch in hub.batches for id in batch) == sorted(
        invoice_document_id(b) for b in bodies if invoice_document_id(b) != poison
    )


async def test_run_backs_off_then_delivers_and_stops_cleanly(outbox: Outbox) -> None:
    hub = FakeHub(unavailable=True)
    outbox.enqueue([doc(body) for body in demo_invoices(5, seed=7)])
    async with asgi_client(hub) as client:
        delivery = Delivery(outbox, client, backoff=FAST, poll_interval=0.05)
        task = asyncio.create_task(delivery.run())
        await wait_until(lambda: hub.requests >= 3)
        assert outbox.counts().queued == 5
        hub.unavailable = False
        await wait_until(lambda: outbox.counts().delivered == 5)
        # new work is picked up when woken
        outbox.enqueue([doc(demo_invoices(6, seed=7)[5])])
        delivery.wake()
        await wait_until(lambda: outbox.counts().delivered == 6)
        delivery.stop()
        await asyncio.wait_for(task, 5)


async def test_an_unreachable_hub_is_retried_until_it_comes_back(outbox: Outbox) -> None:
    hub = FakeHub()
    server = FakeHubServer(hub)
    server.start()
    server.stop()  # the port is ours, nobody listens
    outbox.enqueue([doc(body) for body in demo_invoices(4, seed=8)])
    async with HubClient(server.url, TOKEN) as client:
        delivery = Delivery(outbox, client, backoff=FAST, poll_interval=0.05)
        task = asyncio.create_task(delivery.run())
        try:
            await wait_until(lambda: (outbox.delivery_state() or _NOSTATE).failures >= 2)
            assert outbox.counts().queued == 4
            server.start()
            await wait_until(lambda: outbox.counts().delivered == 4)
        finally:
            delivery.stop()
            await asyncio.wait_for(task, 5)
            server.stop()
    assert len(hub.ledger) == 4


async def test_an_outbox_locked_past_its_timeout_pauses_delivery_only(
    outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = FakeHub()
    outbox.enqueue([doc(body) for body in demo_invoices(3, seed=9)])
    real_next_batch = outbox.next_batch
    refusals = 0

    def locked_twice(size: int) -> Any:
        nonlocal refusals
        if refusals < 2:
            refusals += 1
            raise sqlite3.OperationalError("database is locked")
        return real_next_batch(size)

    monkeypatch.setattr(outbox, "next_batch", locked_twice)
    async with asgi_client(hub) as client:
        delivery = Delivery(outbox, client, backoff=FAST, poll_interval=0.05)
        task = asyncio.create_task(delivery.run())
        try:
            await wait_until(lambda: outbox.counts().delivered == 3)
        finally:
            delivery.stop()
            await asyncio.wait_for(task, 5)
    assert refusals == 2 and len(hub.ledger) == 3


# ----------------------------------------------------------------- signatures


async def test_bodies_are_signed_over_their_canonical_form(outbox: Outbox) -> None:
    signer = DocumentSigner.generate()
    hub = FakeHub(public_key=signer.public_key())
    bodies = demo_invoices(3, seed=9)
    outbox.enqueue([doc(body) for body in bodies])
    async with asgi_client(hub) as client:
        assert (await Delivery(outbox, client, signer=signer).deliver_once()).delivered == 3
    assert verify_signature(signer.public_key(), bodies[0], signer.sign(bodies[0]))
    assert not verify_signature(signer.public_key(), bodies[1], signer.sign(bodies[0]))
    assert not verify_signature(signer.public_key(), bodies[0], "not base64!")


@pytest.mark.parametrize("signing", ["wrong key", "unsigned"])
async def test_a_wrong_signature_is_refused_and_dead_lettered(outbox: Outbox, signing: str) -> None:
    hub = FakeHub(public_key=DocumentSigner.generate().public_key())
    signer = DocumentSigner.generate() if signing == "wrong key" else None
    (body,) = demo_invoices(1, seed=10)
    outbox.enqueue([doc(body)])
    async with asgi_client(hub) as client:
        round_ = await Delivery(outbox, client, signer=signer).deliver_once()
    assert round_.rejected == 1
    assert hub.ledger == {}
    (letter,) = outbox.dead_letters()
    assert letter.code == "BAD_SIGNATURE"
    assert "sign" in letter.reason


def test_key_files_load_or_fail_in_one_line(tmp_path: Path) -> None:
    signer = DocumentSigner.generate()
    path = tmp_path / "key.pem"
    path.write_bytes(signer.private_key_pem())
    loaded = DocumentSigner.from_file(path)
    assert loaded.public_key_pem() == signer.public_key_pem()
    assert loaded.sign({"a": "1"}) == signer.sign({"a": "1"})  # Ed25519 is deterministic
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(SigningKeyError, match="Ed25519"):
        DocumentSigner.from_pem(other)
    with pytest.raises(SigningKeyError, match="not a PEM"):
        DocumentSigner.from_pem(b"hello")
    with pytest.raises(SigningKeyError, match="cannot read"):
        DocumentSigner.from_file(tmp_path / "missing.pem")
    encrypted = signer._key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(SigningKeyError, match="encrypted"):
        DocumentSigner.from_pem(encrypted)


# ----------------------------------------------------------------- the client's reading


def mock_client(handler: Callable[[httpx.Request], httpx.Response]) -> HubClient:
    return HubClient("http://hub.test/", TOKEN, transport=httpx.MockTransport(handler))


def graphql_error(code: str, status: int = 200) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"data": None, "errors": [{"message": "no", "extensions": {"code": code}}]}
        return httpx.Response(status, json=body)

    return handler


DOCS = [{"type": INVOICE_TYPE, "id": "1-2", "body": {}}]


@pytest.mark.parametrize(
    ("handler", "kind", "code"),
    [
        (lambda r: httpx.Response(401, json={}), HubAuthError, ""),
        (lambda r: httpx.Response(403, text="forbidden"), HubAuthError, ""),
        (lambda r: httpx.Response(503), HubUnavailable, "UNAVAILABLE"),
        (lambda r: httpx.Response(429), HubUnavailable, "RATE_LIMITED"),
        (lambda r: httpx.Response(413), HubRequestError, "TOO_LARGE"),
        (lambda r: httpx.Response(200, text="<html>"), HubProtocolError, ""),
        (lambda r: httpx.Response(404, json={"detail": "x"}), HubProtocolError, ""),
        (graphql_error("UNAUTHENTICATED"), HubAuthError, "UNAUTHENTICATED"),
        (graphql_error("FORBIDDEN"), HubAuthError, "FORBIDDEN"),
        (graphql_error("RATE_LIMITED"), HubUnavailable, "RATE_LIMITED"),
        (graphql_error("UNAVAILABLE"), HubUnavailable, "UNAVAILABLE"),
        (graphql_error("BAD_INPUT", 400), HubRequestError, "BAD_INPUT"),
        (graphql_error("INTERNAL_SERVER_ERROR"), HubProtocolError, "INTERNAL_SERVER_ERROR"),
        (
            lambda r: httpx.Response(200, json={"data": {"submitDocuments": {"results": []}}}),
            HubProtocolError,
            "",
        ),
        (
            lambda r: httpx.Response(
                200,
                json={"data": {"submitDocuments": {"results": [{"id": "1-2", "status": "OK"}]}}},
            ),
            HubProtocolError,
            "",
        ),
    ],
)
async def test_hub_answers_are_sorted_by_what_to_do(
    handler: Callable[[httpx.Request], httpx.Response], kind: type[HubCallError], code: str
) -> None:
    async with mock_client(handler) as client:
        with pytest.raises(kind) as caught:
            await client.submit_documents(DOCS)
    assert caught.value.code == code


async def test_the_request_follows_the_contract() -> None:
    seen: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["url"] = str(request.url)
        seen["auth"] = request.headers["authorization"]
        seen["payload"] = json.loads(request.content)
        result = {"id": "1-2", "leafIndex": 5, "leafHash": "aGFzaA==", "status": "CREATED"}
        return httpx.Response(
            200,
            json={"data": {"submitDocuments": {"results": [result], "checkpoint": None}}},
            headers={"Retry-After": "3"},
        )

    async with mock_client(handler) as client:
        (result,) = await client.submit_documents(DOCS)
    assert seen["url"] == "http://hub.test/graphql"
    assert seen["auth"] == f"Bearer {TOKEN}"
    assert "submitDocuments(documents: $docs)" in seen["payload"]["query"]
    assert seen["payload"]["variables"] == {"docs": DOCS}
    assert (result.status, result.leaf_index, result.delivered) == ("CREATED", 5, True)


async def test_retry_after_is_honoured_within_the_cap(outbox: Outbox) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": "30"})

    outbox.enqueue([doc(demo_invoices(1)[0])])
    async with mock_client(handler) as client:
        delivery = Delivery(outbox, client, backoff=Backoff(base=0.1, cap=5))
        error = (await delivery.deliver_once()).error
        assert isinstance(error, HubUnavailable) and error.retry_after == 30
        assert delivery._delay(error) == 5


def test_backoff_grows_is_capped_and_jittered() -> None:
    backoff = Backoff(base=0.5, cap=8)
    rng = random.Random(1)
    for failures, ceiling in [(1, 0.5), (2, 1), (3, 2), (4, 4), (5, 8), (6, 8), (10_000, 8)]:
        delays = [backoff.delay(failures, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100  # jittered, not fixed


_NOSTATE = type("NoState", (), {"failures": 0})()


async def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
