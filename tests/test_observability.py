"""/metrics in Prometheus text; logs as one JSON object a line, with no secrets in them."""

import json
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from hub.app import create_app
from hub.cli import issue_token
from hub.documents.demo_data import DEMO_HOSPITALS, demo_invoices
from hub.institutions import add_institution
from hub.metrics import operation_label
from hub.services import Hub
from tests.deploy.server import SUBMIT, Deployment, document_of

HOSPITAL = DEMO_HOSPITALS[0]


def invoices_of_hospital(count: int, seed: int) -> list[dict[str, Any]]:
    found = [i for i in demo_invoices(count * 100, seed) if i["billCode"] == HOSPITAL.bill_code]
    assert len(found) >= count
    return found[:count]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, from Prometheus text."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_count_documents_batches_tree_size_and_graphql_operations(
    hub: Hub,
) -> None:
    await add_institution(hub.db, HOSPITAL.id, HOSPITAL.name, "hospital")
    token = issue_token(hub.settings, "hospital", "his", HOSPITAL.id, 600)
    auth = {"Authorization": f"Bearer {token}"}
    new = invoices_of_hospital(3, seed=81)
    conflicting = {**new[0], "currency": "USD"}
    transport = httpx.ASGITransport(app=create_app(hub=hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:

        async def gql(query: str, variables: dict[str, Any], name: str | None = None) -> Any:
            body = {"query": query, "variables": variables, "operationName": name}
            response = await client.post("/graphql", json=body, headers=auth)
            assert response.status_code == 200
            return response.json()

        first = await gql(SUBMIT, {"d": [document_of(i) for i in new]})
        assert [r["status"] for r in first["data"]["submitDocuments"]["results"]] == ["CREATED"] * 3
        again = [
            document_of(new[1]),
            document_of(conflicting),
            {**document_of(new[2]), "body": {"billCode": "x"}},
        ]
        second = await gql(SUBMIT, {"d": again})
        assert [r["status"] for r in second["data"]["submitDocuments"]["results"]] == [
            "DUPLICATE",
            "REJECTED",
            "REJECTED",
        ]
        # A client's operation name never becomes a label; an unknown field is "other".
        await gql("query Mine { checkpoint { treeSize } }", {}, "Mine")
        await gql("query { noSuchField }", {})
        response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    got = samples(response.text)

    def value(name: str, **labels: str) -> float:
        return got.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("hub_documents_total", status="CREATED", code="") == 3
    assert value("hub_documents_total", status="DUPLICATE", code="") == 1
    assert value("hub_documents_total", status="REJECTED", code="CONFLICT") == 1
    assert value("hub_documents_total", status="REJECTED", code="BAD_INPUT") == 1
    # Two integrations: 3 leaves, then none (a duplicate and a conflict append nothing).
    assert value("hub_ledger_batch_entries_count") == 2
    assert value("hub_ledger_batch_entries_sum") == 3
    assert value("hub_ledger_batch_entries_bucket", le="1.0") == 1
    assert value("hub_ledger_batch_submissions_sum") == 2
    assert value("hub_ledger_integration_seconds_count") == 2
    assert value("hub_ledger_tree_size") == 3
    seconds = "hub_graphql_request_seconds_count"
    assert value(seconds, operation="mutation.submitDocuments") == 2
    assert value(seconds, operation="query.checkpoint") == 1
    assert value(seconds, operation="other") == 1
    assert not any("Mine" in str(labels) or "noSuchField" in str(labels) for _, labels in got)


async def test_each_app_has_its_own_registry(hub: Hub) -> None:
    # With one global registry the second app would fail: "Duplicated timeseries".
    for app in (create_app(hub=hub), create_app(hub=hub)):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            await client.post("/graphql", json={"query": "{ checkpoint { treeSize } }"})
            text = (await client.get("/metrics")).text
        count = samples(text)
        key = ("hub_graphql_request_seconds_count", (("operation", "query.checkpoint"),))
        assert count[key] == 1


async def test_server_logs_are_json_lines_without_secrets_or_patient_data(
    tmp_path: Path,
) -> None:
    # The log format does not depend on the database: SQLite only.
    deployment = Deployment(f"sqlite://{tmp_path}/hub.db", tmp_path)
    await deployment.prepare([HOSPITAL.id])
    token = deployment.token(HOSPITAL.id)
    invoice = invoices_of_hospital(1, seed=83)[0]
    invoice["checkCode"] = "Qz7Wx9"
    invoice["payer"] = {"name": "测试患者甲", "idMasked": "460***********9876"}
    bad = {**invoice, "billNumber": "12"}  # rejected, and its body must not be logged either
    secrets = [token, token.rsplit(".", 1)[1], "测试患者甲", "460***********9876", "Qz7Wx9"]
    code, number, check = invoice["billCode"], invoice["billNumber"], invoice["checkCode"]

    server = deployment.serve()
    try:
        url = server.wait_ready()
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            auth = {"Authorization": f"Bearer {token}"}
            docs = [document_of(invoice), document_of(bad)]
            body = {"query": SUBMIT, "variables": {"d": docs}}
            response = await client.post("/graphql", json=body, headers=auth)
            statuses = [r["status"] for r in response.json()["data"]["submitDocuments"]["results"]]
            assert statuses == ["CREATED", "REJECTED"]
            lookup = "query($c: String!, $n: String!, $k: String!) { invoice(billCode: $c,"
            lookup += " billNumber: $n, checkCode: $k) { id } }"
            variables = {"c": code, "n": number, "k": check}
            await client.post("/graphql", json={"query": lookup, "variables": variables})
            await client.get("/graphql", params={"query": "{ checkpoint { treeSize } }"})
            await client.get("/verify", params={"code": code, "number": number, "check": check})
            await client.get(f"/verify?token={token}")
            # A forged token is refused; the refusal is not logged with the token.
            forged = {"Authorization": f"Bearer {token[:-4]}AAAA"}
            await client.post("/graphql", json=body, headers=forged)
        server.terminate()
        assert server.wait(30) == 0
    finally:
        server.kill()

    lines = [line for line in server.output().splitlines() if line.strip()]
    entries = []
    for line in lines:
        entry = json.loads(line)
        assert isinstance(entry, dict), line
        entries.append(entry)
        # Check the line as written and as read: JSON escapes non-ASCII text.
        readable = json.dumps(entry, ensure_ascii=False)
        for secret in secrets:
            assert secret not in line and secret not in readable, f"{secret!r} in {line}"
    access = [e for e in entries if e["logger"] == "uvicorn.access"]
    assert {(e["method"], e["path"]) for e in access} >= {
        ("POST", "/graphql"),
        ("GET", "/graphql"),
        ("GET", "/verify"),
    }
    assert all({"ts", "level", "message"} <= e.keys() for e in entries)
    assert any(e["message"].startswith("Uvicorn running on") for e in entries)


def test_labelling_never_fails_on_deeply_nested_json() -> None:
    deep = b'{"query": "{ checkpoint { treeSize } }", "variables": {"x": ' + b"[" * 5000
    deep += b"]" * 5000 + b"}}"
    assert operation_label("POST", b"", deep) == ""
    assert operation_label("POST", b"", b'{"query": "{ checkpoint { treeSize } }"}') == (
        "query.checkpoint"
    )


async def test_metrics_parse_as_standard_families_with_process_and_python_collectors(
    hub: Hub,
) -> None:
    await add_institution(hub.db, HOSPITAL.id, HOSPITAL.name, "hospital")
    token = issue_token(hub.settings, "hospital", "his", HOSPITAL.id, 600)
    transport = httpx.ASGITransport(app=create_app(hub=hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        docs = [document_of(i) for i in invoices_of_hospital(2, seed=85)]
        body = {"query": SUBMIT, "variables": {"d": docs}}
        await client.post("/graphql", json=body, headers={"Authorization": f"Bearer {token}"})
        text = (await client.get("/metrics")).text

    # prometheus_client's parser reads the text as Prometheus (and promtool) do.
    families = {f.name: f for f in text_string_to_metric_families(text)}
    # A `_created` timestamp read as a family of its own looks like a count ("created").
    assert not [name for name in families if name.endswith("_created")]
    assert not [s.name for f in families.values() for s in f.samples if s.name.endswith("_created")]
    assert families["hub_documents"].type == "counter"
    assert {s.name for s in families["hub_documents"].samples} == {"hub_documents_total"}
    assert families["hub_ledger_integration_seconds"].type == "histogram"
    for name in (
        "process_cpu_seconds",
        "process_resident_memory_bytes",
        "process_open_fds",
        "python_info",
        "python_gc_collections",
    ):
        assert name in families, name
    (cpu,) = families["process_cpu_seconds"].samples
    assert cpu.value > 0
    (info,) = families["python_info"].samples
    assert info.labels["implementation"] == "CPython"
