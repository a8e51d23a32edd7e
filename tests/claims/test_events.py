"""`claimEvents` tells the patient of every claim on their bills; roles that see no claims
are refused before anything is watched."""

from typing import Any

from hub.app import create_app
from tests.claims.conftest import HOSP, INSURER_A, INSURER_B, agency, claim, patient_of
from tests.schema.conftest import World
from tests.schema.ws import WebSocketSession

EVENTS = (
    "subscription($since: Int) { claimEvents(since: $since) {"
    " agency amount reference status documentId } }"
)


async def subscribe(ws: WebSocketSession, since: int | None) -> None:
    await ws.send(
        {
            "id": "1",
            "type": "subscribe",
            "payload": {"query": EVENTS, "variables": {"since": since}},
        }
    )


async def test_the_patient_hears_of_every_claim(claims_world: World) -> None:
    world = claims_world
    body = world.docs[HOSP][0]
    size = (await world.gql("{ checkpoint { treeSize } }"))["data"]["checkpoint"]["treeSize"]
    async with WebSocketSession(create_app(hub=world.hub), "graphql-transport-ws") as ws:
        await ws.init({"Authorization": f"Bearer {patient_of(world, body)}"})
        await subscribe(ws, size)
        assert "errors" not in await claim(world, agency(world, INSURER_A), body, "1.00", "A-5")
        assert "errors" not in await claim(world, agency(world, INSURER_B), body, "2.00", "B-5")
        heard: list[dict[str, Any]] = []
        while len(heard) < 2:
            message = await ws.receive()
            assert message["type"] == "next", message
            heard.append(message["payload"]["data"]["claimEvents"])
    assert [(e["agency"], e["amount"], e["reference"], e["status"]) for e in heard] == [
        (INSURER_A, "1.00", "A-5", "ACTIVE"),
        (INSURER_B, "2.00", "B-5", "ACTIVE"),
    ]


async def test_roles_without_claims_are_refused(claims_world: World) -> None:
    world = claims_world
    for token, code in [
        (world.token("hospital", "his", HOSP), "FORBIDDEN"),
        (world.token("admin", "ops"), "FORBIDDEN"),
        (None, "UNAUTHENTICATED"),
    ]:
        async with WebSocketSession(create_app(hub=world.hub), "graphql-transport-ws") as ws:
            await ws.init({"Authorization": f"Bearer {token}"} if token else {})
            await subscribe(ws, None)
            message = await ws.receive()
            payload = message["payload"]
            errors = payload if isinstance(payload, list) else payload.get("errors")
            assert errors[0]["extensions"]["code"] == code, message
