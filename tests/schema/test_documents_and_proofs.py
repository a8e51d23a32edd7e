"""Submitting, paging and proving through GraphQL; proofs verify against the signed note."""

import asyncio
import base64
import gc
from typing import Any

import pytest
from strawberry.dataloader import DataLoader

from hub.documents.demo_data import demo_invoices
from hub.documents.service import DocumentInput
from hub.ledger.checkpoint import open_checkpoint
from hub.ledger.receipt import verify_receipt
from hub.ledger.storage import TileReader
from hub.ledger.tree import leaf_hash, root_from_leaf_hashes, verify_consistency, verify_inclusion
from hub.store.db import Sql
from schema.app import build_schema
from schema.context import Context
from schema.executor import HubExecutionContext
from schema.export import DEFAULT_PATH, sdl
from tests.schema.conftest import AGENCY_FULL, HOSP_A, HOSP_B, ORIGIN, World, code_of, doc_id

SUBMIT = (
    "mutation($d: [DocumentInput!]!) { submitDocuments(documents: $d) {"
    " results { id status leafIndex leafHash error { code message } }"
    " checkpoint { treeSize rootHash note } } }"
)


def b64d(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


async def test_submit_results_in_order_covered_by_the_checkpoint(world: World) -> None:
    token = world.token("hospital", "his", HOSP_A)
    new = demo_invoices(3, seed=31)
    old = world.docs[HOSP_A][0]
    changed = {**old, "currency": "USD"}
    docs = [{"type": "medical_invoice", "id": doc_id(b), "body": b} for b in new]
    docs += [
        {"type": "medical_invoice", "id": doc_id(old), "body": old},
        {"type": "medical_invoice", "id": doc_id(changed), "body": changed},
        {"type": "medical_invoice", "id": "bad", "body": {"billCode": "x"}},
    ]
    r = await world.gql(SUBMIT, {"d": docs}, token)
    assert "errors" not in r, r
    out = r["data"]["submitDocuments"]
    statuses = [x["status"] for x in out["results"]]
    assert statuses == ["CREATED"] * 3 + ["DUPLICATE", "REJECTED", "REJECTED"]
    assert out["results"][4]["error"]["code"] == "CONFLICT"
    assert out["results"][5]["error"]["code"] == "BAD_INPUT"
    cp = open_checkpoint(out["checkpoint"]["note"], world.hub.signer.verifier, ORIGIN)
    assert (
        cp.size == out["checkpoint"]["treeSize"]
        and base64.b64encode(cp.root).decode() == (out["checkpoint"]["rootHash"])
    )
    for result in out["results"][:4]:
        assert result["leafIndex"] < cp.size


async def test_proofs_verify_against_the_signed_checkpoint(world: World) -> None:
    doc0 = world.docs[HOSP_A][0]
    token = world.token("patient", doc0["patientRef"], HOSP_A)
    r = await world.gql(
        "query($id: ID!) { inclusionProof(documentId: $id) { leafIndex treeSize leafHash"
        " leafData hashes receipt checkpoint { note treeSize } } }",
        {"id": doc_id(doc0)},
        token,
    )
    assert "errors" not in r, r
    p = r["data"]["inclusionProof"]
    verifier = world.hub.signer.verifier
    cp = open_checkpoint(p["checkpoint"]["note"], verifier, ORIGIN)
    assert cp.size == p["treeSize"]
    data = b64d(p["leafData"])
    assert leaf_hash(data) == b64d(p["leafHash"])
    verify_inclusion(
        p["leafIndex"], cp.size, leaf_hash(data), [b64d(h) for h in p["hashes"]], cp.root
    )
    assert verify_receipt(p["receipt"], verifier).size == cp.size
    # A tampered proof does not verify.
    with pytest.raises(ValueError):
        bad = [b64d(h) for h in p["hashes"]]
        bad[0] = bytes(32)
        verify_inclusion(p["leafIndex"], cp.size, leaf_hash(data), bad, cp.root)

    # Token-less: the printed codes give the body, the salt and a receipt.
    inv = await world.gql(
        "query($c: String!, $n: String!, $k: String!) { invoice(billCode: $c, billNumber: $n,"
        " checkCode: $k) { body salt digest inclusionProof { receipt } } }",
        {"c": doc0["billCode"], "n": doc0["billNumber"], "k": doc0["checkCode"]},
    )
    got = inv["data"]["invoice"]
    assert got["body"] == doc0 and got["salt"]
    verify_receipt(got["inclusionProof"]["receipt"], verifier)

    # Consistency between an old checkpoint and the current one.
    old = await world.gql(
        "{ consistencyProof(fromSize: 3) { fromSize toSize hashes } checkpoint { note } }"
    )
    c = old["data"]["consistencyProof"]
    head = open_checkpoint(old["data"]["checkpoint"]["note"], verifier)
    reader = TileReader(world.hub.db)
    first3 = root_from_leaf_hashes([await reader.leaf_hash(i) for i in range(3)])
    verify_consistency(3, c["toSize"], [b64d(h) for h in c["hashes"]], first3, head.root)
    zero = await world.gql("{ consistencyProof(fromSize: 0) { toSize } }")
    assert code_of(zero) == "BAD_INPUT"


async def test_pages_filters_and_constant_query_count(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = world.token("agency", "clerk", AGENCY_FULL)
    seen: list[str] = []
    fetch = Sql.fetch

    async def counting(self: Sql, query: str, params: Any = ()) -> Any:
        seen.append(query)
        return await fetch(self, query, params)

    monkeypatch.setattr(Sql, "fetch", counting)
    page = (
        "query($first: Int!, $after: String, $f: DocumentFilter) {"
        " documents(first: $first, after: $after, filter: $f) { totalCount"
        " pageInfo { hasNextPage endCursor }"
        " edges { cursor node { id issuer body institution { name } } } } }"
    )
    counts = []
    ids: list[str] = []
    after = None
    while True:
        seen.clear()
        r = await world.gql(page, {"first": 3, "after": after}, token)
        counts.append(len(seen))
        conn = r["data"]["documents"]
        assert conn["totalCount"] == 8
        ids += [e["node"]["id"] for e in conn["edges"]]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert ids == [doc_id(b) for b in world.docs[HOSP_A] + world.docs[HOSP_B]]
    # Same number of queries for 3 rows as for 2 (the last page): no query per row.
    assert len(set(counts)) == 1, counts
    only_b = await world.gql(page, {"first": 100, "f": {"issuer": HOSP_B}}, token)
    assert {e["node"]["issuer"] for e in only_b["data"]["documents"]["edges"]} == {HOSP_B}
    issued = world.docs[HOSP_A][0]["issuedAt"][:10]
    dated = await world.gql(
        page, {"first": 100, "f": {"issuedFrom": issued, "issuedTo": issued}}, token
    )
    assert all(
        e["node"]["body"]["issuedAt"].startswith(issued)
        for e in dated["data"]["documents"]["edges"]
    )
    assert dated["data"]["documents"]["totalCount"] >= 1


async def test_erased_document_reads_as_erased_and_still_proves(world: World) -> None:
    doc = world.docs[HOSP_B][0]
    admin = world.token("admin", "root")
    r = await world.gql(
        'mutation($id: ID!) { eraseDocument(issuer: "hosp-b", type: "medical_invoice",'
        " id: $id, version: 1) }",
        {"id": doc_id(doc)},
        admin,
    )
    assert r["data"]["eraseDocument"] is True
    hosp = world.token("hospital", "his", HOSP_B)
    got = await world.gql(
        "query($id: ID!) { document(id: $id) { status body salt inclusionProof { receipt } } }",
        {"id": doc_id(doc)},
        hosp,
    )
    d = got["data"]["document"]
    assert (d["status"], d["body"], d["salt"]) == ("ERASED", None, None)
    verify_receipt(d["inclusionProof"]["receipt"], world.hub.signer.verifier)


async def test_checkpoints_subscription(world: World) -> None:
    guards = world.hub.extras["graphql.guards"]
    ctx = Context(world.hub, None, None, "test", guards)  # type: ignore[arg-type]
    stream = await build_schema().subscribe(
        "subscription { checkpoints { treeSize } }", context_value=ctx
    )
    first = await anext(stream)  # type: ignore[arg-type]
    assert first.data is not None
    size = first.data["checkpoints"]["treeSize"]
    await world.hub.documents.submit(
        HOSP_A, [DocumentInput("medical_invoice", doc_id(b), b) for b in demo_invoices(2, seed=41)]
    )
    second = await asyncio.wait_for(anext(stream), 5)  # type: ignore[arg-type]
    assert second.data is not None
    assert second.data["checkpoints"]["treeSize"] == size + 2
    await stream.aclose()  # type: ignore[union-attr]


def test_exported_schema_is_current() -> None:
    assert DEFAULT_PATH.read_text(encoding="utf-8") == sdl(), (
        "schema/hub.graphql is stale: run `python -m schema.export`"
    )


async def _access_leaves(world: World) -> list[tuple[str, int]]:
    rows = await world.hub.db.sql.fetch(
        "SELECT d.doc_id, a.leaf_index FROM access_events a"
        " JOIN documents d ON d.id = a.document_id ORDER BY a.leaf_index"
    )
    return [(r[0], int(r[1])) for r in rows]


async def test_a_page_of_bodies_is_one_access_leaf_per_body_read(world: World) -> None:
    token = world.token("agency", "clerk", AGENCY_FULL)
    before = await _access_leaves(world)
    # Asked through a fragment, as clients often do: every body on the page is a read.
    page = (
        "fragment F on Document { id body }"
        " { documents(first: 5) { edges { node { ...F } } } checkpoint { treeSize } }"
    )
    r = await world.gql(page, None, token)
    ids = [e["node"]["id"] for e in r["data"]["documents"]["edges"]]
    assert all(e["node"]["body"] for e in r["data"]["documents"]["edges"])
    new = (await _access_leaves(world))[len(before) :]
    assert [doc for doc, _ in new] == ids
    # On the ledger before the answer: under the checkpoint read in the same request.
    assert max(index for _, index in new) < r["data"]["checkpoint"]["treeSize"]
    # No body asked for, or one skipped by a directive: no read, no leaf.
    for query in (
        "{ documents(first: 5) { edges { node { id digest } } } }",
        "query($b: Boolean!) { documents(first: 5) { edges { node { id"
        " body @include(if: $b) } } } }",
    ):
        assert "errors" not in await world.gql(query, {"b": False}, token)
    assert len(await _access_leaves(world)) == len(before) + len(ids)
    # The same body under @include(if: true) is read and recorded by its own resolver.
    r = await world.gql(
        "query($b: Boolean!) { documents(first: 2) { edges { node { id"
        " body @include(if: $b) } } } }",
        {"b": True},
        token,
    )
    assert all(e["node"]["body"] for e in r["data"]["documents"]["edges"])
    assert len(await _access_leaves(world)) == len(before) + len(ids) + 2


async def test_a_request_leaves_nothing_for_the_cyclic_collector(world: World) -> None:
    """A request's context, loaders and executor are freed when it ends (Context.release),
    not left in reference cycles for the collector to walk under load."""
    query = (
        "query($id: ID!) { inclusionProof(documentId: $id) { leafIndex receipt }"
        " documents(first: 5) { edges { node { id issuer body } } } checkpoint { treeSize } }"
    )
    variables = {"id": doc_id(world.docs[HOSP_A][0])}
    # An agency reading bodies also runs both loaders (issuers, access leaves).
    token = world.token("agency", "claims", AGENCY_FULL)
    first = await world.gql(query, variables, token)
    assert first.get("errors") is None and len(first["data"]["documents"]["edges"]) == 5
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        again = await world.gql(query, variables, token)
        gc.collect()
        left = [o for o in gc.garbage if isinstance(o, Context | HubExecutionContext | DataLoader)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    # (The body reads anchored access leaves meanwhile: same leaf, a larger tree.)
    assert (
        again["data"]["inclusionProof"]["leafIndex"] == first["data"]["inclusionProof"]["leafIndex"]
    )
    assert left == []
