"""Every channel checked alike, on a real server: gql over both websocket protocols,
GraphQL over HTTP by POST and GET, refusals that name the problem and cost little."""

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from gql import Client, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport

import schema.gate
from hub.access.ratelimit import GuessLimiter, RateLimiter
from hub.app import create_app
from schema.context import Guards
from schema.limits import MAX_DEPTH, MAX_REPEATS, MAX_REQUEST_BYTES
from schema.watcher import checkpoint_watcher
from schema.websocket import MAX_CONNECTIONS_PER_CLIENT, TRY_AGAIN_LATER
from tests.schema.conftest import HOSP_A, World
from tests.schema.live import serving

TRANSPORT_WS, GRAPHQL_WS = "graphql-transport-ws", "graphql-ws"
SUBSCRIPTIONS = (GRAPHQL_WS, TRANSPORT_WS)
CHECKPOINT = "{ checkpoint { treeSize rootHash } }"
ADD_INSTITUTION = (
    'mutation { addInstitution(id: "hosp-new", name: "New", kind: "hospital") { id name } }'
)
SUBSCRIBE = "subscription { checkpoints { treeSize } }"
GRAPHQL_RESPONSE = "application/graphql-response+json"


@pytest.fixture
async def url(world: World) -> AsyncIterator[str]:
    async with serving(create_app(hub=world.hub)) as base:
        yield base


def ws_url(url: str) -> str:
    return url.replace("http://", "ws://") + "/graphql"


def no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert logged == [], logged


@pytest.mark.parametrize("protocol", SUBSCRIPTIONS)
async def test_gql_runs_queries_mutations_and_subscriptions_over_both_protocols(
    world: World, url: str, protocol: str
) -> None:
    admin = world.token("admin", "ops")
    transport = WebsocketsTransport(
        url=ws_url(url), subprotocols=[protocol], init_payload={"token": admin}
    )
    async with Client(transport=transport) as session:
        got = await session.execute(gql(CHECKPOINT))
        assert got == (await world.gql(CHECKPOINT))["data"]
        added = await session.execute(gql(ADD_INSTITUTION))
        assert added["addInstitution"] == {"id": "hosp-new", "name": "New"}
        async for first in session.subscribe(gql(SUBSCRIBE)):
            assert first["checkpoints"]["treeSize"] == got["checkpoint"]["treeSize"]
            break


@pytest.mark.parametrize("protocol", SUBSCRIPTIONS)
@pytest.mark.parametrize("kind", ["malformed", "expired", "alg-none"])
async def test_a_bad_token_in_connection_init_is_refused_as_over_http(
    world: World, url: str, protocol: str, kind: str
) -> None:
    good = world.token("hospital", "his", HOSP_A)
    bad = {
        "malformed": "not.a.jwt",
        "expired": world.issuer.issue(role="hospital", sub="his", inst=HOSP_A, ttl=60, now=1.0),
        "alg-none": "eyJhbGciOiJub25lIn0." + good.split(".")[1] + ".",
    }[kind]
    over_http = await world.post(CHECKPOINT, token=bad)
    assert over_http.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    transport = WebsocketsTransport(
        url=ws_url(url), subprotocols=[protocol], init_payload={"token": bad}
    )
    with pytest.raises(Exception) as refused:
        async with Client(transport=transport) as session:
            async for _ in session.subscribe(gql(SUBSCRIBE)):
                pytest.fail("a bad token's subscription streamed")
    assert not isinstance(refused.value, AssertionError)


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_a_subscription_over_http_is_refused_with_a_pointer_to_the_websocket(
    world: World, url: str, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with httpx.AsyncClient(base_url=url) as client:
        for accept in ("application/json", GRAPHQL_RESPONSE):
            if method == "POST":
                r = await client.post(
                    "/graphql", json={"query": SUBSCRIBE}, headers={"Accept": accept}
                )
            else:
                r = await client.get(
                    "/graphql", params={"query": SUBSCRIBE}, headers={"Accept": accept}
                )
            assert r.status_code == (400 if accept == GRAPHQL_RESPONSE else 200), r.text
            (error,) = r.json()["errors"]
            assert error["extensions"]["code"] == "BAD_INPUT"
            assert "websocket" in error["message"]
    no_errors_logged(caplog)


async def test_graphql_over_http_media_types_and_status_codes(world: World, url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        ok = await client.post(
            "/graphql", json={"query": CHECKPOINT}, headers={"Accept": GRAPHQL_RESPONSE}
        )
        assert ok.status_code == 200
        assert ok.headers["content-type"].startswith(GRAPHQL_RESPONSE)
        legacy = await client.post("/graphql", json={"query": CHECKPOINT})
        assert legacy.headers["content-type"].startswith("application/json")
        for bad, variables in [
            ("{ checkpoint { ", None),  # parse
            ("{ checkpoint { noSuchField } }", None),  # validation
            ("query($n: Int!) { documents(first: $n) { totalCount } }", {"n": "x"}),  # variables
        ]:
            body = {"query": bad, "variables": variables}
            strict = await client.post("/graphql", json=body, headers={"Accept": GRAPHQL_RESPONSE})
            assert strict.status_code == 400, (bad, strict.text)
            assert "data" not in strict.json()
            assert strict.json()["errors"][0]["extensions"]["code"] == "BAD_INPUT"
            loose = await client.post("/graphql", json=body, headers={"Accept": "application/json"})
            assert loose.status_code == 200 and loose.json()["data"] is None
        got = await client.get("/graphql", params={"query": CHECKPOINT})
        assert got.status_code == 200 and got.json() == (await world.gql(CHECKPOINT))
        admin = {"Authorization": f"Bearer {world.token('admin', 'ops')}"}
        mutation = await client.get("/graphql", params={"query": ADD_INSTITUTION}, headers=admin)
        assert mutation.status_code == 405 and mutation.headers["allow"] == "POST"
    assert code_of_institution(await world.gql("{ institutions { id } }", token=admin_token(world)))


def admin_token(world: World) -> str:
    return world.token("admin", "ops")


def code_of_institution(result: dict[str, Any]) -> bool:
    """True when the GET mutation above left nothing behind."""
    return "hosp-new" not in {i["id"] for i in result["data"]["institutions"]}


async def test_every_graphql_answer_says_no_store(world: World, url: str) -> None:
    body = world.docs[HOSP_A][0]
    lookup = (
        f'{{ invoice(billCode: "{body["billCode"]}", billNumber: "{body["billNumber"]}",'
        f' checkCode: "{body["checkCode"]}") {{ body salt }} }}'
    )
    async with httpx.AsyncClient(base_url=url) as client:
        answers = [
            await client.post("/graphql", json={"query": lookup}),
            await client.get("/graphql", params={"query": CHECKPOINT}),
            await client.post("/graphql", json={"query": "{"}),
            await client.post(
                "/graphql", content=b"[]", headers={"content-type": "application/json"}
            ),
            await client.post("/graphql", content=b"x", headers={"content-type": "text/plain"}),
            await client.get("/healthz"),
        ]
    assert answers[0].json()["data"]["invoice"]["salt"]
    for answer in answers:
        assert answer.headers.get("cache-control") == "no-store", (answer.url, answer.headers)


async def _subscribe_raw(url: str, protocol: str, token: str | None = None) -> Any:
    ws = await websockets.connect(ws_url(url), subprotocols=[protocol])  # type: ignore[list-item]
    payload = {"token": token} if token else {}
    await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    return ws


async def _first(ws: Any) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if message["type"] not in ("ka", "ping", "pong"):
            return message


@pytest.mark.parametrize("protocol", SUBSCRIPTIONS)
async def test_the_rate_limit_applies_to_websocket_operations(
    world: World, url: str, protocol: str
) -> None:
    world.hub.extras["graphql.guards"] = Guards(
        RateLimiter(1.0, 3.0, clock=world.clock), GuessLimiter(clock=world.clock)
    )
    start = "subscribe" if protocol == TRANSPORT_WS else "start"
    ws = await _subscribe_raw(url, protocol)
    try:
        kinds = []
        for i in range(4):
            await ws.send(
                json.dumps({"id": str(i), "type": start, "payload": {"query": SUBSCRIBE}})
            )
            answer = await _first(ws)
            kinds.append(answer["type"])
        assert kinds[:3] == ["next" if protocol == TRANSPORT_WS else "data"] * 3
        assert kinds[3] == "error"
        errors = answer["payload"] if isinstance(answer["payload"], list) else [answer["payload"]]
        assert errors[0]["extensions"]["code"] == "RATE_LIMITED"
    finally:
        await ws.close()
    # The HTTP channel shares the same bucket: this client is still out of requests.
    assert (await world.gql(CHECKPOINT))["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


async def test_websocket_connections_are_capped_per_client(world: World, url: str) -> None:
    held = [await _subscribe_raw(url, TRANSPORT_WS) for _ in range(MAX_CONNECTIONS_PER_CLIENT)]
    try:
        async with websockets.connect(ws_url(url), subprotocols=[TRANSPORT_WS]) as extra:  # type: ignore[list-item]
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(extra.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == TRY_AGAIN_LATER
        assert "per client" in closed.value.rcvd.reason
    finally:
        for ws in held:
            await ws.close()
    # A slot freed is a slot to use again.
    again = await _subscribe_raw(url, TRANSPORT_WS)
    await again.close()


async def test_subscribers_share_one_watcher_woken_by_the_sequencer(
    world: World, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    watcher = checkpoint_watcher(world.hub)
    monkeypatch.setattr(watcher, "poll_seconds", 3600.0)  # only the sequencer can wake them
    sockets = [await _subscribe_raw(url, TRANSPORT_WS) for _ in range(5)]
    try:
        for ws in sockets:
            await ws.send(
                json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}})
            )
        firsts = [await _first(ws) for ws in sockets]
        size = firsts[0]["payload"]["data"]["checkpoints"]["treeSize"]
        reads = watcher.reads
        assert reads <= 1
        bodies = world.docs[HOSP_A][:1]
        from hub.documents.demo_data import demo_invoices
        from hub.documents.service import DocumentInput

        fresh = demo_invoices(1, seed=77)
        await world.hub.documents.submit(
            HOSP_A,
            [
                DocumentInput("medical_invoice", f"{b['billCode']}-{b['billNumber']}", b)
                for b in fresh
            ],
        )
        seconds = [await _first(ws) for ws in sockets]
        assert {m["payload"]["data"]["checkpoints"]["treeSize"] for m in seconds} == {size + 1}
        assert watcher.reads == reads  # no subscriber read the database
        assert bodies
    finally:
        for ws in sockets:
            await ws.close()


async def test_a_field_repeated_hundreds_of_times_is_refused_before_validation(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    validated: list[int] = []
    real = schema.gate.validate_document

    def counting(*args: Any) -> Any:
        validated.append(1)
        return real(*args)

    monkeypatch.setattr(schema.gate, "validate_document", counting)
    query = "{ checkpoint { " + "treeSize " * 660 + "} }"
    assert len(query) < 16 * 1024
    r = await world.gql(query)
    assert r["data"] is None and r["errors"][0]["extensions"]["code"] == "BAD_INPUT"
    assert (
        "'treeSize'" in r["errors"][0]["message"] and str(MAX_REPEATS) in r["errors"][0]["message"]
    )
    # Through fragments too.
    spread = "{ checkpoint { ...A ...B } } fragment A on Checkpoint { " + "treeSize " * 6
    spread += "} fragment B on Checkpoint { " + "treeSize " * 6 + "}"
    assert (await world.gql(spread))["errors"][0]["extensions"]["code"] == "BAD_INPUT"
    assert validated == []


async def test_the_depth_limit_counts_introspection_fields(world: World) -> None:
    nested = "{ __schema { types { " + "fields { type { " * 6 + "name" + " } }" * 6 + " } } }"
    r = await world.gql(nested)
    assert r["errors"][0]["extensions"]["code"] == "BAD_INPUT"
    assert "depth" in r["errors"][0]["message"] and str(MAX_DEPTH) in r["errors"][0]["message"]
    shallow = await world.gql("{ __schema { queryType { name } } }")
    assert "errors" not in shallow


async def test_a_query_not_a_mutation_runs_over_gql_by_http_errors_raise(
    world: World, url: str
) -> None:
    from gql.transport.httpx import HTTPXAsyncTransport

    transport = HTTPXAsyncTransport(url=url + "/graphql")
    async with Client(transport=transport) as session:
        assert await session.execute(gql(CHECKPOINT)) == (await world.gql(CHECKPOINT))["data"]
        with pytest.raises(TransportQueryError):
            await session.execute(gql("{ documents { totalCount } }"))


async def test_a_websocket_message_is_bounded_like_an_http_body(world: World, url: str) -> None:
    ws = await _subscribe_raw(url, TRANSPORT_WS)
    try:
        huge = {"id": "1", "type": "subscribe", "payload": {"query": "{ checkpoint { treeSize } }"}}
        huge["payload"]["variables"] = {"x": "a" * (MAX_REQUEST_BYTES + 1)}  # type: ignore[index]
        await ws.send(json.dumps(huge))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    finally:
        await ws.close()
    assert "errors" not in await world.gql(CHECKPOINT)  # the server serves on
