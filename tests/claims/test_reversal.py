"""A reversal (冲红) of a claimed invoice is accepted and turns its active claims DISPUTED:
seen in `claims(status: DISPUTED)`, and over a real websocket in `claimEvents`."""

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import websockets

from hub.cli import issue_token
from hub.services import Hub
from tests.claims.conftest import (
    CLAIM,
    DOCUMENT_CLAIMS,
    HOSP,
    INSURER_A,
    INSURER_B,
    RELEASE,
    SUBMIT,
    agency,
    build_world,
    claim,
    doc_id,
    reversal_input,
)
from tests.deploy.server import Deployment
from tests.schema.conftest import World, code_of

DISPUTED = "{ claims(status: DISPUTED) { id agency status documentId } }"
ACTIVE = "{ claims(status: ACTIVE) { id } }"
EVENTS = (
    "subscription($since: Int) { claimEvents(since: $since) {"
    " id documentId agency amount reference status } }"
)


async def test_a_reversal_disputes_the_claims_on_the_invoice(claims_world: World) -> None:
    world = claims_world
    body, other = world.docs[HOSP][0], world.docs[HOSP][1]
    a, b = agency(world, INSURER_A), agency(world, INSURER_B)
    by_a = (await claim(world, a, body, "2.00", "A-1"))["data"]["claimDocument"]
    by_b = (await claim(world, b, body, "1.00", "B-1"))["data"]["claimDocument"]
    untouched = (await claim(world, a, other, "1.00", "A-2"))["data"]["claimDocument"]

    hospital = world.token("hospital", "his", HOSP)
    reversed_ = await world.gql(SUBMIT, {"d": [reversal_input(body)]}, hospital)
    assert reversed_["data"]["submitDocuments"]["results"][0]["status"] == "CREATED"

    for token, mine in ((a, by_a), (b, by_b)):
        disputed = (await world.gql(DISPUTED, token=token))["data"]["claims"]
        assert [(c["id"], c["status"]) for c in disputed] == [(mine["id"], "DISPUTED")]
    assert [c["id"] for c in (await world.gql(ACTIVE, token=a))["data"]["claims"]] == [
        untouched["id"]
    ]
    # The reversal is the latest version: nothing more is claimable, on either version.
    latest = (await world.gql(DOCUMENT_CLAIMS, {"id": doc_id(body)}, a))["data"]["document"]
    assert latest["claimedAmount"] == "0.00"
    assert [c["status"] for c in latest["claims"]] == ["DISPUTED"]
    for version in (None, 1, 2):
        refused = await world.gql(
            CLAIM, {"id": doc_id(body), "amount": "0.01", "ref": "A-3", "version": version}, a
        )
        assert code_of(refused) == "CONFLICT", refused
        assert "0.00 still claimable" in refused["errors"][0]["message"]
    # A disputed claim can still be undone by its agency.
    released = await world.gql(RELEASE, {"id": by_a["id"], "reason": "bill reversed"}, a)
    assert released["data"]["releaseClaim"]["status"] == "RELEASED"
    assert (await world.gql(DISPUTED, token=a))["data"]["claims"] == []


async def _next_event(ws: Any) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
        if message["type"] == "next":
            assert "errors" not in message["payload"], message
            event: dict[str, Any] = message["payload"]["data"]["claimEvents"]
            return event
        assert message["type"] in ("ping", "pong"), message


async def test_claim_events_over_a_real_websocket(database_url: str, tmp_path: Path) -> None:
    deployment = Deployment(database_url, tmp_path)
    await deployment.prepare([])
    hub = await Hub.start(deployment.settings, run_migrations=False)
    try:
        bodies = await build_world(hub, invoices=2)
    finally:
        await hub.stop()
    body = bodies[0]
    settings = deployment.settings
    a = issue_token(settings, "agency", "clerk", INSURER_A, 3600)
    b = issue_token(settings, "agency", "clerk", INSURER_B, 3600)
    hospital = issue_token(settings, "hospital", "his", HOSP, 3600)
    server = deployment.serve()
    try:
        url = server.wait_ready()

        async with httpx.AsyncClient(base_url=url, timeout=30) as client:

            async def gql(query: str, variables: dict[str, Any], token: str) -> dict[str, Any]:
                answer = await client.post(
                    "/graphql",
                    json={"query": query, "variables": variables},
                    headers={"Authorization": f"Bearer {token}"},
                )
                result: dict[str, Any] = answer.json()
                assert "errors" not in result, result
                return result

            head = await gql("{ checkpoint { treeSize } }", {}, a)
            since = head["data"]["checkpoint"]["treeSize"]
            ws_url = url.replace("http://", "ws://") + "/graphql"
            async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:
                await ws.send(
                    json.dumps(
                        {"type": "connection_init", "payload": {"Authorization": f"Bearer {a}"}}
                    )
                )
                ack = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
                assert ack["type"] == "connection_ack"
                await ws.send(
                    json.dumps(
                        {
                            "id": "1",
                            "type": "subscribe",
                            "payload": {"query": EVENTS, "variables": {"since": since}},
                        }
                    )
                )
                vars_a = {"id": doc_id(body), "amount": "2.00", "ref": "A-7"}
                mine = (await gql(CLAIM, vars_a, a))["data"]["claimDocument"]
                vars_b = {"id": doc_id(body), "amount": "1.00", "ref": "B-SECRET"}
                await gql(CLAIM, vars_b, b)
                await gql(SUBMIT, {"d": [reversal_input(body)]}, hospital)

                booked = await _next_event(ws)
                disputed = await _next_event(ws)
        assert (booked["id"], booked["status"], booked["reference"]) == (
            mine["id"],
            "ACTIVE",
            "A-7",
        )
        # B's claim came between the two, and A was not told of it.
        assert (disputed["id"], disputed["status"]) == (mine["id"], "DISPUTED")
        assert disputed["documentId"] == doc_id(body) and disputed["agency"] == INSURER_A
    finally:
        server.terminate()
        server.wait(30)
