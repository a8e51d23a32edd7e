"""The `checkpoints` subscription over a real websocket (graphql-transport-ws) on `hub serve`."""

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from hub.documents.demo_data import DEMO_HOSPITALS, demo_invoices
from tests.deploy.server import Deployment, submit

SUBSCRIBE = "subscription { checkpoints { treeSize rootHash note } }"


async def _next(ws: Any) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
        if message["type"] == "next":
            payload: dict[str, Any] = message["payload"]["data"]["checkpoints"]
            return payload
        assert message["type"] in ("ping", "pong"), message


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_subscriber_sees_the_checkpoint_that_covers_a_new_document(
    database_url: str, tmp_path: Path
) -> None:
    hospital = DEMO_HOSPITALS[0]
    deployment = Deployment(database_url, tmp_path)
    await deployment.prepare([hospital.id])
    invoice = next(i for i in demo_invoices(50, seed=5) if i["billCode"] == hospital.bill_code)
    server = deployment.serve()
    try:
        url = server.wait_ready()
        ws_url = url.replace("http://", "ws://") + "/graphql"
        async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
            assert ack["type"] == "connection_ack"
            await ws.send(
                json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}})
            )
            first = await _next(ws)
            async with httpx.AsyncClient(timeout=30) as client:
                answer = await submit(client, url, deployment.token(hospital.id), [invoice])
            second = await _next(ws)
        assert second["treeSize"] == first["treeSize"] + 1
        assert second["treeSize"] == answer["checkpoint"]["treeSize"]
        assert second["rootHash"] == answer["checkpoint"]["rootHash"]
    finally:
        server.terminate()
        server.wait(30)
