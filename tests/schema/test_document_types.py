"""Document types as a new user meets them, through the public contract only: register a
type, issue it, grant one view, read it as its subject, check its definition's digest."""

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.access.ratelimit import GuessLimiter, RateLimiter
from hub.app import create_app
from hub.audit import verify_ledger
from hub.ledger.storage import decode_bundle
from schema.context import Guards
from tests.documents.test_types import certificate
from tests.schema.conftest import Clock, World, code_of, issuer_for, start_hub

SUBMIT = (
    "mutation($d: [DocumentInput!]!) { submitDocuments(documents: $d) {"
    " results { id status version error { code message } } } }"
)
READ = (
    "query($id: ID!, $t: String) { document(id: $id, type: $t) {"
    " id type issuer version typeVersion view viewName body salt } }"
)
REGISTER = (
    "mutation($d: JSON!) { registerDocumentType(definition: $d) {"
    " name version digest leafIndex views { name fields } } }"
)
ADD_INSTITUTION = (
    "mutation($id: ID!, $name: String!, $kind: String!, $codes: [String!]) {"
    " addInstitution(id: $id, name: $name, kind: $kind, billCodes: $codes) { id kind billCodes } }"
)


@pytest.fixture
async def world(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    hub = await start_hub(database_url, tmp_path)
    clock = Clock()
    hub.extras["graphql.guards"] = Guards(
        RateLimiter(1e6, 1e6, clock=clock), GuessLimiter(clock=clock)
    )
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(hub=hub)), base_url="http://hub.test"
        ) as client:
            yield World(hub, client, issuer_for(hub), clock)
    finally:
        await hub.stop()


def ok(result: dict[str, Any]) -> dict[str, Any]:
    assert not result.get("errors"), result["errors"]
    data: dict[str, Any] = result["data"]
    return data


def cert(number: str, student: str = "S-0001", **extra: Any) -> dict[str, Any]:
    body = {
        "number": number,
        "issuedAt": "2026-06-30T09:00:00+08:00",
        "studentRef": student,
        "grades": [{"subject": "math", "score": "95"}, {"subject": "physics", "score": "88"}],
        **extra,
    }
    return {"type": "school_certificate", "id": number, "body": body}


async def add(world: World, inst: str, kind: str, codes: list[str] | None = None) -> None:
    admin = world.token("admin", "root")
    ok(
        await world.gql(
            ADD_INSTITUTION, {"id": inst, "name": inst, "kind": kind, "codes": codes}, admin
        )
    )


async def submit(world: World, token: str, *docs: dict[str, Any]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = ok(await world.gql(SUBMIT, {"d": list(docs)}, token))[
        "submitDocuments"
    ]["results"]
    return results


async def test_a_new_user_registers_a_type_and_issues_grants_and_reads_it(world: World) -> None:
    admin = world.token("admin", "root")
    registered = ok(await world.gql(REGISTER, {"d": certificate()}, admin))["registerDocumentType"]
    assert (registered["name"], registered["version"]) == ("school_certificate", 1)
    assert registered["views"] == [{"name": "transcript", "fields": ["/number", "/grades"]}]
    await add(world, "school-1", "school")
    await add(world, "hosp-1", "hospital")
    await add(world, "edu-bureau", "agency")
    school = world.token("agency", "registrar", "school-1")

    bad_score = cert("000002")
    bad_score["body"]["grades"][1]["score"] = "A+"
    missing = cert("000003")
    del missing["body"]["studentRef"]
    wrong_id = {**cert("000004"), "id": "000005"}
    results = await submit(world, school, cert("000001"), bad_score, missing, wrong_id)
    assert [r["status"] for r in results] == ["CREATED", "REJECTED", "REJECTED", "REJECTED"]
    assert results[1]["error"]["code"] == "BAD_INPUT"
    assert results[1]["error"]["message"].startswith("/grades/1/score:")
    assert results[2]["error"]["message"].startswith("/studentRef:")
    assert results[3]["error"]["message"].startswith("id:")
    # An institution of a kind the type does not list is refused.
    (hospital,) = await submit(world, world.token("hospital", "his", "hosp-1"), cert("000009"))
    assert hospital["status"] == "REJECTED" and hospital["error"]["code"] == "FORBIDDEN"

    # One view granted: the agency sees exactly its fields.
    grant = ok(
        await world.gql(
            'mutation { addGrant(agency: "edu-bureau", type: "school_certificate",'
            ' issuers: ["*"], viewName: "transcript", purpose: "enrolment") {'
            " view viewName } }",
            token=admin,
        )
    )["addGrant"]
    assert grant == {"view": None, "viewName": "transcript"}
    for both_or_neither in ('view: FULL, viewName: "transcript", ', ""):
        refused = await world.gql(
            'mutation { addGrant(agency: "edu-bureau", type: "school_certificate",'
            f' issuers: ["*"], {both_or_neither}purpose: "p") {{ id }} }}',
            token=admin,
        )
        assert code_of(refused) == "BAD_INPUT" and "exactly one of view and viewName" in str(
            refused
        )
    unknown_view = await world.gql(
        'mutation { addGrant(agency: "edu-bureau", type: "school_certificate",'
        ' issuers: ["*"], viewName: "financial", purpose: "p") { id } }',
        token=admin,
    )
    assert "view: must be one of full, transcript" in str(unknown_view)
    agency = world.token("agency", "clerk", "edu-bureau")
    seen = ok(await world.gql(READ, {"id": "000001"}, agency))["document"]
    assert seen["viewName"] == "transcript" and seen["view"] is None and seen["salt"] is None
    assert seen["body"] == {"number": "000001", "grades": cert("000001")["body"]["grades"]}
    assert seen["typeVersion"] == 1
    events = ok(
        await world.gql('{ accessLog(documentId: "000001") { agency purpose } }', token=agency)
    )["accessLog"]
    assert events == [{"agency": "edu-bureau", "purpose": "enrolment"}]

    # Its subject reads the whole of it; another issuer's same student number does not.
    student = world.token("patient", "S-0001", "school-1")
    whole = ok(await world.gql(READ, {"id": "000001"}, student))["document"]
    assert whole["body"] == cert("000001")["body"] and whole["salt"] and whole["viewName"] == "full"
    elsewhere = await world.gql(READ, {"id": "000001"}, world.token("patient", "S-0001", "x"))
    assert code_of(elsewhere) == "NOT_FOUND"
    nowhere = await world.gql(READ, {"id": "000001"}, world.token("patient", "S-0001"))
    assert code_of(nowhere) == "NOT_FOUND"  # its subject is the school's, not national

    # The definition is public, and its digest is the one in its `type` leaf.
    listed = (await world.client.get("/types")).json()
    assert {"name": "school_certificate", "version": 1, "digest": registered["digest"]} in listed
    served = await world.client.get("/types/school_certificate/1")
    assert served.status_code == 200
    assert (
        base64.b64encode(hashlib.sha256(served.content).digest()).decode() == registered["digest"]
    )
    assert json.loads(served.content) == certificate()
    index = registered["leafIndex"]
    size = ok(await world.gql("{ checkpoint { treeSize } }"))["checkpoint"]["treeSize"]
    tile = index // 256
    width = min(256, size - tile * 256)
    path = f"/log/tile/entries/{tile:03d}" + (f".p/{width}" if width < 256 else "")
    leaf = json.loads(decode_bundle((await world.client.get(path)).content)[index % 256])
    assert leaf == {
        "v": 1,
        "kind": "type",
        "name": "school_certificate",
        "version": 1,
        "digest": registered["digest"],
    }
    assert (await world.client.get("/types/school_certificate/2")).status_code == 404
    report = await verify_ledger(world.hub.db, world.hub.signer.verifier, world.hub.settings.origin)
    assert report.rows["document_types"] == 1 and report.documents == 1


async def test_a_stored_document_keeps_its_type_version(world: World) -> None:
    admin = world.token("admin", "root")
    ok(await world.gql(REGISTER, {"d": certificate()}, admin))
    await add(world, "school-1", "school")
    school = world.token("agency", "registrar", "school-1")
    assert [r["status"] for r in await submit(world, school, cert("000001"))] == ["CREATED"]

    removes = certificate(version=2)
    del removes["schema"]["properties"]["nickname"]
    refused = await world.gql(REGISTER, {"d": removes}, admin)
    assert code_of(refused) == "BAD_INPUT" and "removes the field /nickname" in str(refused)
    tightens = certificate(version=2)
    tightens["schema"]["properties"]["nickname"]["maxLength"] = 5
    assert "lowers maxLength" in str(await world.gql(REGISTER, {"d": tightens}, admin))
    skips = certificate(version=3)
    assert "the next version of school_certificate is 2" in str(
        await world.gql(REGISTER, {"d": skips}, admin)
    )

    v2 = certificate(version=2)
    v2["schema"]["properties"]["school"] = {"type": "string"}
    v2["views"]["public"] = ["/number", "/school"]
    assert ok(await world.gql(REGISTER, {"d": v2}, admin))["registerDocumentType"]["version"] == 2
    again = ok(await world.gql(REGISTER, {"d": v2}, admin))["registerDocumentType"]
    assert again["version"] == 2  # the same definition again is the one registered
    results = await submit(world, school, cert("000002", school="No. 1 Middle School"))
    assert [r["status"] for r in results] == ["CREATED"]
    student = world.token("patient", "S-0001", "school-1")
    old = ok(await world.gql(READ, {"id": "000001"}, student))["document"]
    new = ok(await world.gql(READ, {"id": "000002"}, student))["document"]
    assert (old["typeVersion"], new["typeVersion"]) == (1, 2)
    assert old["body"] == cert("000001")["body"]
    types = ok(await world.gql("{ documentTypes { name version leafIndex } }"))["documentTypes"]
    mine = [(t["name"], t["version"]) for t in types if t["name"] == "school_certificate"]
    assert mine == [("school_certificate", 1), ("school_certificate", 2)]
    await verify_ledger(world.hub.db, world.hub.signer.verifier, world.hub.settings.origin)


INVOICE = (
    "query($c: String!, $n: String!, $k: String!) { invoice(billCode: $c, billNumber: $n,"
    " checkCode: $k) { issuer body } }"
)
LOOKUP = (
    "query($t: String!, $id: ID!, $k: String!) { lookup(type: $t, id: $id, checkCode: $k) {"
    " issuer type body salt viewName } }"
)


async def test_a_second_hospital_cannot_shadow_another_hospitals_invoice(world: World) -> None:
    from hub.documents.demo_data import demo_invoices

    await add(world, "hosp-a", "hospital")
    await add(world, "hosp-b", "hospital")
    await add(world, "hosp-c", "hospital", ["47000126"])
    await add(world, "insurer", "agency")
    admin = world.token("admin", "root")
    ok(
        await world.gql(
            'mutation { addGrant(agency: "insurer", type: "medical_invoice",'
            ' issuers: ["*"], view: FULL, purpose: "claims") { id } }',
            token=admin,
        )
    )
    true_body = demo_invoices(1, seed=21)[0]
    doc_id = f"{true_body['billCode']}-{true_body['billNumber']}"
    a, b = world.token("hospital", "his", "hosp-a"), world.token("hospital", "his", "hosp-b")
    (first,) = await submit(world, a, {"type": "medical_invoice", "id": doc_id, "body": true_body})
    assert first["status"] == "CREATED"

    forged = {**true_body, "issuerName": "Forged", "checkCode": "FORGED"}
    (shadow,) = await submit(world, b, {"type": "medical_invoice", "id": doc_id, "body": forged})
    assert shadow["status"] == "REJECTED" and shadow["error"]["code"] == "CONFLICT"
    assert "issued by another institution" in shadow["error"]["message"]
    other_number = {**forged, "billNumber": "0999999999"}
    (same_code,) = await submit(
        world,
        b,
        {
            "type": "medical_invoice",
            "id": f"{true_body['billCode']}-0999999999",
            "body": other_number,
        },
    )
    assert same_code["status"] == "REJECTED" and same_code["error"]["code"] == "BAD_INPUT"
    assert "another institution's bill code" in same_code["error"]["message"]
    own = {**forged, "billCode": "46999926"}
    (accepted,) = await submit(
        world, b, {"type": "medical_invoice", "id": f"46999926-{own['billNumber']}", "body": own}
    )
    assert accepted["status"] == "CREATED"
    # A hospital registered with codes uses only those.
    c = world.token("hospital", "his", "hosp-c")
    (not_assigned,) = await submit(
        world,
        c,
        {
            "type": "medical_invoice",
            "id": f"46999927-{own['billNumber']}",
            "body": {**own, "billCode": "46999927"},
        },
    )
    assert not_assigned["status"] == "REJECTED" and "assigned" in not_assigned["error"]["message"]
    listed = ok(await world.gql("{ institutions { id billCodes } }", token=admin))["institutions"]
    codes = {i["id"]: i["billCodes"] for i in listed}
    assert codes["hosp-a"] == [true_body["billCode"]] and codes["hosp-c"] == ["47000126"]
    anyone = ok(await world.gql("{ institutions { id billCodes } }", token=a))["institutions"]
    assert all(i["billCodes"] is None for i in anyone)

    # Every lookup answers the one true invoice.
    codes_of = {
        "c": true_body["billCode"],
        "n": true_body["billNumber"],
        "k": true_body["checkCode"],
    }
    for token in (None, world.token("agency", "clerk", "insurer")):
        got = ok(await world.gql(INVOICE, codes_of, token))["invoice"]
        assert (got["issuer"], got["body"]["issuerName"]) == ("hosp-a", true_body["issuerName"])
    looked = ok(
        await world.gql(LOOKUP, {"t": "medical_invoice", "id": doc_id, "k": true_body["checkCode"]})
    )["lookup"]
    assert looked["issuer"] == "hosp-a" and looked["salt"] and looked["viewName"] == "full"
    forged_codes = await world.gql(LOOKUP, {"t": "medical_invoice", "id": doc_id, "k": "FORGED"})
    assert code_of(forged_codes) == "NOT_FOUND"
    agency = world.token("agency", "clerk", "insurer")
    read = ok(await world.gql(READ, {"id": doc_id}, agency))["document"]
    assert read["issuer"] == "hosp-a"
    patient = world.token("patient", true_body["patientRef"], "hosp-a")
    assert ok(await world.gql(READ, {"id": doc_id}, patient))["document"]["issuer"] == "hosp-a"


async def test_printed_code_ids_are_unique_across_issuers_and_lookup_covers_any_type(
    world: World,
) -> None:
    from hub.documents.demo_data import demo_invoices
    from hub.documents.demo_types import demo_receipts, demo_settlements

    await add(world, "finance-1", "finance_bureau")
    await add(world, "finance-2", "finance_bureau")
    await add(world, "insurance", "insurance_bureau")
    await add(world, "hosp-a", "hospital")
    receipt = demo_receipts(1, seed=3)[0]
    doc = {
        "type": "fiscal_receipt",
        "id": f"{receipt['billCode']}-{receipt['billNumber']}",
        "body": receipt,
    }
    (first,) = await submit(world, world.token("agency", "x", "finance-1"), doc)
    (second,) = await submit(world, world.token("agency", "x", "finance-2"), doc)
    assert first["status"] == "CREATED"
    assert second["status"] == "REJECTED" and second["error"]["code"] == "CONFLICT"
    found = ok(
        await world.gql(LOOKUP, {"t": "fiscal_receipt", "id": doc["id"], "k": receipt["checkCode"]})
    )["lookup"]
    assert found["issuer"] == "finance-1" and found["body"] == receipt
    bad = dict(receipt, amount="12.345")
    (refused,) = await submit(world, world.token("agency", "x", "finance-1"), {**doc, "body": bad})
    assert refused["status"] == "REJECTED" and refused["error"]["message"].startswith("/amount:")

    # A national subject: the insured person reads settlements without a hospital's inst.
    invoices = demo_invoices(2, seed=8)
    settlements = demo_settlements([("hosp-a", b) for b in invoices])
    results = await submit(
        world,
        world.token("agency", "x", "insurance"),
        *(
            {"type": "insurance_settlement", "id": s["settlementNumber"], "body": s}
            for s in settlements
        ),
    )
    assert [r["status"] for r in results] == ["CREATED", "CREATED"]
    person = world.token("patient", settlements[0]["insuredRef"])
    mine = ok(
        await world.gql(
            "{ documents { totalCount edges { node { type issuer body } } } }", token=person
        )
    )["documents"]
    assert mine["totalCount"] == 1
    assert mine["edges"][0]["node"]["body"] == settlements[0]
    # Filters work across types.
    agency_view = ok(
        await world.gql(
            '{ documents(filter: {type: "fiscal_receipt"}) { totalCount } }',
            token=world.token("agency", "x", "finance-1"),
        )
    )["documents"]
    assert agency_view["totalCount"] == 1
