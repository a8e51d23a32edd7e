"""A real PostgreSQL stopped and restarted under a real `hub serve`: clients are told
UNAVAILABLE (HTTP 503, Retry-After), never INTERNAL, and the hub recovers by itself."""

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from tests.deploy.server import SUBMIT, Deployment, document_of
from tests.faults.pg_cluster import Cluster
from tests.test_observability import HOSPITAL, invoices_of_hospital

QUERY = "{ checkpoint { treeSize } }"


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "UNAVAILABLE", error
    assert "try again" in error["message"]


def assert_no_server_error(log: str) -> None:
    """No error logged and no traceback from the hub itself (asyncpg's pool may log its
    reconnection attempts with theirs)."""
    for line in log.splitlines():
        entry = json.loads(line) if line.startswith("{") else {"logger": "", "message": line}
        assert entry.get("level") != "error", line
        if entry["logger"].startswith(("hub", "schema", "uvicorn")):
            assert "exception" not in entry and "Traceback" not in entry["message"], line


async def test_stopped_postgres_answers_unavailable_and_the_hub_recovers(
    pg_cluster: Cluster, tmp_path: Path
) -> None:
    deployment = Deployment(pg_cluster.url, tmp_path)
    await deployment.prepare([HOSPITAL.id])
    token = deployment.token(HOSPITAL.id)
    auth = {"Authorization": f"Bearer {token}"}
    first, second = (
        {"query": SUBMIT, "variables": {"d": [document_of(i)]}}
        for i in invoices_of_hospital(2, seed=91)
    )
    server = deployment.serve()
    try:
        url = server.wait_ready()
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            done = await client.post("/graphql", json=first, headers=auth)
            assert done.status_code == 200 and "errors" not in done.json(), done.text

            pg_cluster.stop("fast")
            assert_unavailable(await client.post("/graphql", json=second, headers=auth))
            assert_unavailable(await client.post("/graphql", json={"query": QUERY}))
            assert_unavailable(await client.get("/graphql", params={"query": QUERY}))
            for path in ("/log/checkpoint", "/log/tile/0/000.p/1", "/log/tile/entries/000.p/1"):
                answer = await client.get(path)
                assert answer.status_code == 503, (path, answer.status_code, answer.text)
                assert answer.headers["retry-after"]
                assert "database is unavailable" in answer.text
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and "database unavailable" in ready.text
            assert (await client.get("/healthz")).status_code == 200  # alive: no restart
            metrics = await client.get("/metrics")  # still scraped while the database is down
            assert metrics.status_code == 200 and "process_cpu_seconds_total" in metrics.text

            pg_cluster.start()
            # The pool's connections died with the server: a request may still meet one
            # (and be told UNAVAILABLE), but the hub reconnects without a restart.
            answers = [await client.post("/graphql", json=second, headers=auth) for _ in range(5)]
            for answer in answers:
                if answer.status_code != 200:
                    assert_unavailable(answer)
            assert answers[-1].status_code == 200, answers[-1].text
            results = answers[-1].json()["data"]["submitDocuments"]["results"]
            assert results[0]["status"] in {"CREATED", "DUPLICATE"}
            assert (await client.get("/readyz")).status_code == 200
            tree = (await client.post("/graphql", json={"query": QUERY})).json()
            assert tree["data"]["checkpoint"]["treeSize"] == 2  # nothing acknowledged lost
        server.terminate()
        server.wait(30)
    finally:
        server.kill()
    log = server.output()
    assert "database unavailable: PostgreSQL" in log or "database unavailable: connection" in log
    assert_no_server_error(log)
    assert token not in log


async def test_restart_under_requests_never_answers_internal(
    pg_cluster: Cluster, tmp_path: Path
) -> None:
    deployment = Deployment(pg_cluster.url, tmp_path)
    await deployment.prepare([HOSPITAL.id])
    auth = {"Authorization": f"Bearer {deployment.token(HOSPITAL.id)}"}
    invoices = invoices_of_hospital(25, seed=92)  # the last one for the restart itself
    server = deployment.serve()
    acknowledged: list[str] = []
    refused = 0
    first_acknowledged, told_to_come_back, restarted = (asyncio.Event() for _ in range(3))
    try:
        url = server.wait_ready()
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:

            async def acknowledge(invoice: dict[str, Any]) -> None:
                nonlocal refused
                body = {"query": SUBMIT, "variables": {"d": [document_of(invoice)]}}
                for _ in range(5):  # after the restart, a dead pooled connection or two
                    answer = await client.post("/graphql", json=body, headers=auth)
                    if answer.status_code == 200:
                        break
                    assert_unavailable(answer)
                    refused += 1
                    told_to_come_back.set()
                    await restarted.wait()  # a client told to come back later
                assert answer.status_code == 200, answer.text
                assert "errors" not in answer.json(), answer.text
                acknowledged.append(document_of(invoice)["id"])
                first_acknowledged.set()

            async def sender(mine: list[dict[str, Any]]) -> None:
                for invoice in mine:
                    await acknowledge(invoice)

            async def restart() -> None:
                await first_acknowledged.wait()
                await asyncio.to_thread(pg_cluster.stop, "fast")
                # While it is down, at least this request meets it, however the senders
                # were scheduled; they may meet it too, in flight or not.
                down = asyncio.create_task(acknowledge(invoices[-1]))
                await told_to_come_back.wait()
                await asyncio.to_thread(pg_cluster.start)
                restarted.set()
                await down

            senders = (sender(invoices[:-1][i::4]) for i in range(4))
            await asyncio.gather(*senders, restart())
            query = "query($id: ID!) { document(id: $id) { id } }"
            for doc_id in acknowledged:
                found = await client.post(
                    "/graphql", json={"query": query, "variables": {"id": doc_id}}, headers=auth
                )
                assert found.json()["data"]["document"]["id"] == doc_id
    finally:
        server.kill()
    assert len(acknowledged) == len(invoices)
    assert refused > 0  # the restart did meet requests
    assert_no_server_error(server.output())
