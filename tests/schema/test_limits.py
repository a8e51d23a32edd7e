"""Abuse: oversized, deep, wide or too frequent requests are refused before any resolver."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.access.ratelimit import GuessLimiter, RateLimiter
from hub.app import create_app
from hub.auth.tokens import TokenIssuer, TokenSettings
from hub.documents.demo_data import demo_invoices
from hub.ledger.storage import read_checkpoint
from hub.store.db import Sql
from schema.context import Guards
from schema.limits import MAX_ALIASES, MAX_BATCH, MAX_REQUEST_BYTES
from tests.schema.conftest import HOSP_A, World, code_of, doc_id, start_hub

CLIENT = "127.0.0.1"  # what httpx's ASGITransport reports


@pytest.fixture
def queries(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every SQL query the hub runs while the test does."""
    seen: list[str] = []
    fetch = Sql.fetch

    async def counting(self: Sql, query: str, params: Any = ()) -> Any:
        seen.append(query)
        return await fetch(self, query, params)

    monkeypatch.setattr(Sql, "fetch", counting)
    yield seen


async def test_deep_query_is_refused_before_execution(world: World, queries: list[str]) -> None:
    deep = "{ checkpoint " + "{ note " * 50 + "}" * 50 + " }"
    r = await world.gql(deep)
    assert r["data"] is None and code_of(r) == "BAD_INPUT"
    assert any("depth" in e["message"] for e in r["errors"])
    assert queries == []


async def test_aliases_and_tokens_are_capped(world: World, queries: list[str]) -> None:
    few = "{ " + " ".join(f"a{i}: checkpoint {{ treeSize }}" for i in range(MAX_ALIASES + 5)) + " }"
    r = await world.gql(few)
    assert r["data"] is None and code_of(r) == "BAD_INPUT"
    assert "aliases" in r["errors"][0]["message"]
    many = "{ " + " ".join(f"a{i}: checkpoint {{ treeSize }}" for i in range(1000)) + " }"
    r = await world.gql(many)
    assert r["data"] is None and code_of(r) == "BAD_INPUT"
    assert queries == []


async def test_large_body_is_refused_unread(world: World, queries: list[str]) -> None:
    padding = "x" * (10 * 1024 * 1024)
    r = await world.client.post(
        "/graphql", json={"query": "{ checkpoint { treeSize } }", "variables": {"p": padding}}
    )
    assert r.status_code == 413
    assert r.json()["errors"][0]["extensions"]["code"] == "BAD_INPUT"
    # A body without a Content-Length is counted as it arrives.

    async def chunks() -> Any:
        for _ in range(MAX_REQUEST_BYTES // 65536 + 2):
            yield b" " * 65536

    r = await world.client.post(
        "/graphql", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    assert queries == []


async def test_batch_over_the_cap_is_refused_whole(world: World, queries: list[str]) -> None:
    bodies = demo_invoices(MAX_BATCH + 1, seed=21)
    docs = [{"type": "medical_invoice", "id": doc_id(b), "body": b} for b in bodies]
    before = await read_checkpoint(world.hub.db)
    queries.clear()
    r = await world.gql(
        "mutation($d: [DocumentInput!]!) { submitDocuments(documents: $d) { checkpoint"
        " { treeSize } } }",
        {"d": docs},
        world.token("hospital", "his", HOSP_A),
    )
    assert r["data"] is None and code_of(r) == "BAD_INPUT"
    assert str(MAX_BATCH) in r["errors"][0]["message"]
    assert queries == []
    assert await read_checkpoint(world.hub.db) == before


async def test_page_size_is_capped(world: World) -> None:
    token = world.token("hospital", "his", HOSP_A)
    r = await world.gql("{ documents(first: 101) { totalCount } }", token=token)
    assert code_of(r) == "BAD_INPUT"


async def test_bad_tokens_are_unauthenticated_everywhere(world: World) -> None:
    for header in ["Bearer not.a.jwt", "Basic dXNlcjpwdw==", "Bearer "]:
        r = await world.client.post(
            "/graphql",
            json={"query": "{ checkpoint { treeSize } }"},
            headers={"Authorization": header},
        )
        assert code_of(r.json()) == "UNAUTHENTICATED", header
    # A token signed by another key under our key id is no token of ours.
    s = world.hub.settings
    forged = TokenIssuer(
        Ed25519PrivateKey.generate(), world.issuer.kid, TokenSettings(s.jwt_issuer, s.jwt_audience)
    ).issue(role="admin", sub="root")
    assert code_of(await world.gql("{ institutions { id } }", token=forged)) == "UNAUTHENTICATED"


async def test_per_principal_rate_limit(world: World) -> None:
    world.hub.extras["graphql.guards"] = Guards(
        RateLimiter(1.0, 3, clock=world.clock), GuessLimiter(clock=world.clock)
    )
    alice = world.token("hospital", "his", HOSP_A)
    bob = world.token("auditor", "a1")
    for _ in range(3):
        assert code_of(await world.gql("{ checkpoint { treeSize } }", token=alice)) is None
    limited = await world.gql("{ checkpoint { treeSize } }", token=alice)
    assert limited["data"] is None and code_of(limited) == "RATE_LIMITED"
    # Another principal has its own budget; time refills the first one.
    assert code_of(await world.gql("{ checkpoint { treeSize } }", token=bob)) is None
    world.clock.now += 1.0
    assert code_of(await world.gql("{ checkpoint { treeSize } }", token=alice)) is None


async def test_invoice_guessing_slows_down_then_locks_out(world: World) -> None:
    doc0 = world.docs[HOSP_A][0]
    query = (
        "query($c: String!, $n: String!, $k: String!) {"
        " invoice(billCode: $c, billNumber: $n, checkCode: $k) { id body } }"
    )
    right = {"c": doc0["billCode"], "n": doc0["billNumber"], "k": doc0["checkCode"]}
    wrong = {**right, "k": "000000" if doc0["checkCode"] != "000000" else "000001"}
    hit = await world.gql(query, right)
    assert hit["data"]["invoice"]["body"] == doc0
    limiter: GuessLimiter = world.hub.extras["graphql.guards"].invoice_lookups  # type: ignore[attr-defined]
    for _ in range(limiter.free):
        assert code_of(await world.gql(query, wrong)) == "NOT_FOUND"
    # One miss over the free ones: now even the right code must wait.
    assert code_of(await world.gql(query, wrong)) == "NOT_FOUND"
    assert code_of(await world.gql(query, right)) == "RATE_LIMITED"
    world.clock.now += limiter.base_delay
    assert code_of(await world.gql(query, right)) is None
    # Keep guessing, waiting out each delay: the client ends up locked out.
    for _ in range(limiter.free + 1, limiter.lockout_after):
        world.clock.now += limiter.wait_time(CLIENT)
        assert code_of(await world.gql(query, wrong)) == "NOT_FOUND"
    world.clock.now += 3600
    assert code_of(await world.gql(query, right)) == "RATE_LIMITED"
    world.clock.now += limiter.lockout
    assert code_of(await world.gql(query, right)) is None


async def test_prod_hides_introspection_and_graphiql(database_url: str, tmp_path: Path) -> None:
    hub = await start_hub(database_url, tmp_path, env="prod")
    try:
        app = create_app(hub=hub)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hub.test"
        ) as client:
            r = await client.post("/graphql", json={"query": "{ __schema { types { name } } }"})
            assert code_of(r.json()) == "BAD_INPUT"
            ok = await client.post("/graphql", json={"query": "{ checkpoint { treeSize } }"})
            assert ok.json() == {"data": {"checkpoint": {"treeSize": 0}}}
            page = await client.get("/graphql", headers={"Accept": "text/html"})
            assert "graphiql" not in page.text.lower()
    finally:
        await hub.stop()


async def test_an_operation_text_is_validated_once_with_the_limits_on(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import schema.gate

    validated: list[int] = []
    real = schema.gate.validate_document

    def counting(*args: Any) -> Any:
        validated.append(1)
        return real(*args)

    monkeypatch.setattr(schema.gate, "validate_document", counting)
    query = "{ checkpoint { treeSize rootHash } } # validated once"
    for _ in range(3):
        assert code_of(await world.gql(query)) is None
    assert len(validated) == 1
    # A refused text stays refused from the cache; one over a limit is refused before
    # validation ever runs.
    unknown = "{ checkpoint { noSuchField } }"
    too_many = (
        "{ " + " ".join(f"a{i}: checkpoint {{ treeSize }}" for i in range(MAX_ALIASES + 1)) + " }"
    )
    for _ in range(2):
        assert code_of(await world.gql(unknown)) == "BAD_INPUT"
        assert code_of(await world.gql(too_many)) == "BAD_INPUT"
    assert len(validated) == 2
