"""GraphQL over websockets (graphql-transport-ws and graphql-ws): errors are shaped as over
HTTP, a bad operation text is answered rather than dropped, and browsers can authenticate
in connection_init."""

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import schema.context
from hub.access.grants import list_grants, revoke_grant
from hub.app import create_app
from schema.websocket import MAX_OPERATIONS_PER_CONNECTION
from tests.schema.conftest import AGENCY_FIN, HOSP_A, World, code_of
from tests.schema.ws import WebSocketSession

TRANSPORT_WS, GRAPHQL_WS = "graphql-transport-ws", "graphql-ws"
DOCUMENTS = "{ documents(first: 1) { totalCount } }"
DEEP = "{ checkpoint " + "{ note " * 50 + "}" * 50 + " }"


async def run(ws: WebSocketSession, id: str, query: str) -> dict[str, Any]:
    """graphql-transport-ws: subscribe, and the first answer."""
    await ws.send({"id": id, "type": "subscribe", "payload": {"query": query}})
    return await ws.receive()


def errors_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    payload = message["payload"]
    if isinstance(payload, list):  # graphql-transport-ws "error"
        return payload
    found: list[dict[str, Any]] = payload.get("errors") or [payload]  # "next" / graphql-ws
    return found


def codes(message: dict[str, Any]) -> set[str]:
    return {e["extensions"]["code"] for e in errors_of(message)}


async def test_transport_ws_errors_are_shaped_as_over_http(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    over_http = await world.gql(DOCUMENTS)
    async with WebSocketSession(create_app(hub=world.hub), TRANSPORT_WS) as ws:
        await ws.init()
        refused = await run(ws, "1", DOCUMENTS)
        assert refused["type"] == "next"
        assert errors_of(refused) == over_http["errors"]
        assert codes(refused) == {"UNAUTHENTICATED"}
        assert await ws.receive() == {"id": "1", "type": "complete"}

        too_deep = await run(ws, "2", DEEP)
        assert too_deep["type"] == "error" and codes(too_deep) == {"BAD_INPUT"}
        assert any("depth" in e["message"] for e in errors_of(too_deep))

        # A text that does not parse gets an answer, not a silent "complete".
        broken = await run(ws, "3", "subscription{")
        assert broken["type"] == "error" and codes(broken) == {"BAD_INPUT"}
        assert errors_of(broken)[0]["message"].startswith("Syntax Error")

        # The connection is still good.
        fine = await run(ws, "4", "{ checkpoint { treeSize } }")
        assert fine["payload"] == await world.gql("{ checkpoint { treeSize } }")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_graphql_ws_errors_are_shaped(world: World) -> None:
    async with WebSocketSession(create_app(hub=world.hub), GRAPHQL_WS) as ws:
        await ws.init()
        for id, query in [
            ("1", "subscription{"),
            ("2", "subscription { checkpoints { noSuchField } }"),
            ("3", "subscription" + DEEP),
        ]:
            await ws.send({"id": id, "type": "start", "payload": {"query": query}})
            answer = await ws.receive()
            assert answer["type"] == "error" and answer["id"] == id, answer
            assert codes(answer) == {"BAD_INPUT"}, answer


@pytest.mark.parametrize(
    "payload",
    [
        lambda token: {"Authorization": f"Bearer {token}"},
        lambda token: {"authorization": f"Bearer {token}"},
        lambda token: {"token": token},
    ],
    ids=["Authorization", "authorization", "token"],
)
async def test_a_browser_sends_its_token_in_connection_init(world: World, payload: Any) -> None:
    token = world.token("hospital", "his", HOSP_A)
    over_http = await world.gql(DOCUMENTS, token=token)
    assert "errors" not in over_http
    async with WebSocketSession(create_app(hub=world.hub), TRANSPORT_WS) as ws:
        await ws.init(payload(token))
        answer = await run(ws, "1", DOCUMENTS)
    assert answer["type"] == "next" and answer["payload"] == over_http


async def test_websocket_tokens_from_header_and_bad_tokens(world: World) -> None:
    token = world.token("hospital", "his", HOSP_A)
    app = create_app(hub=world.hub)
    headers = {"Authorization": f"Bearer {token}"}
    async with WebSocketSession(app, TRANSPORT_WS, headers) as ws:
        await ws.init()
        answer = await run(ws, "1", DOCUMENTS)
        assert "errors" not in answer["payload"]
    # A bad token is refused at connection_init, as over HTTP, never acknowledged.
    for bad in [{"token": "not.a.jwt"}, {"Authorization": "Basic dXNlcjpwdw=="}, {"token": 7}]:
        async with WebSocketSession(app, TRANSPORT_WS, headers) as ws:
            await ws.send({"type": "connection_init", "payload": bad})
            closed = await ws.event()
            assert closed["type"] == "websocket.close" and closed["code"] == 4403, bad


async def test_a_deeply_nested_message_closes_only_its_connection(world: World) -> None:
    async with WebSocketSession(create_app(hub=world.hub), TRANSPORT_WS) as ws:
        await ws.init()
        await ws.send_text(
            '{"id": "1", "type": "subscribe", "payload": ' + "[" * 5000 + "]" * 5000 + "}"
        )
        closed = await ws.event()
        assert closed["type"] == "websocket.close" and closed["code"] == 4400, closed
    assert code_of(await world.gql("{ checkpoint { treeSize } }")) is None


async def test_the_handlers_own_refusals_have_a_code_too(world: World) -> None:
    # Strawberry's per-connection operation limit answers outside any operation.
    subscribe = "subscription { checkpoints { treeSize } }"
    async with WebSocketSession(create_app(hub=world.hub), TRANSPORT_WS) as ws:
        await ws.init()
        for i in range(MAX_OPERATIONS_PER_CONNECTION):
            assert (await run(ws, str(i), subscribe))["type"] == "next"
        over = await run(ws, "one too many", subscribe)
    assert over["type"] == "error" and codes(over) == {"BAD_INPUT"}, over


async def test_each_operation_on_a_connection_is_answered_as_of_now(world: World) -> None:
    # One connection, many operations: a grant revoked in between reads nothing any
    # more, and every read of a body is an access leaf of its own.
    body = world.docs[HOSP_A][0]
    query = "query($id: ID!) { document(id: $id) { body } }"
    variables = {"id": f"{body['billCode']}-{body['billNumber']}"}
    token = world.token("agency", "clerk", AGENCY_FIN)
    (grant,) = [g for g in await list_grants(world.hub.db, AGENCY_FIN)]

    async def read(ws: WebSocketSession, id: str) -> dict[str, Any]:
        await ws.send(
            {"id": id, "type": "subscribe", "payload": {"query": query, "variables": variables}}
        )
        answer = await ws.receive()
        assert await ws.receive() == {"id": id, "type": "complete"}
        return answer

    async with WebSocketSession(create_app(hub=world.hub), TRANSPORT_WS) as ws:
        await ws.init({"token": token})
        sizes = []
        for id in ("1", "2"):
            answer = await read(ws, id)
            assert answer["payload"]["data"]["document"]["body"]["totals"] == body["totals"]
            sizes.append((await world.gql("{ checkpoint { treeSize } }"))["data"])
        assert sizes[0]["checkpoint"]["treeSize"] + 1 == sizes[1]["checkpoint"]["treeSize"]
        await revoke_grant(world.hub, grant.id)
        refused = await read(ws, "3")
    assert code_of(refused["payload"]) == "NOT_FOUND"


async def test_a_token_that_expires_while_connected_stops_holding(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = world.token("hospital", "his", HOSP_A)  # valid for an hour, the issuer's default
    async with WebSocketSession(create_app(hub=world.hub), TRANSPORT_WS) as ws:
        await ws.init({"token": token})
        answer = await run(ws, "1", DOCUMENTS)
        assert "errors" not in answer["payload"], answer
        assert await ws.receive() == {"id": "1", "type": "complete"}
        later = datetime.now(UTC) + timedelta(hours=2)
        monkeypatch.setattr(schema.context, "utc_now", lambda: later)
        expired = await run(ws, "2", DOCUMENTS)
    assert codes(expired) == {"UNAUTHENTICATED"}, expired
    assert errors_of(expired)[0]["message"] == "token has expired"
