"""Who may do what through GraphQL: the role x operation matrix, not-visible == not-found,
views, and grants that expire or are revoked."""

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hub.access.grants import create_grant
from hub.access.views import FINANCIAL_FIELDS
from hub.documents.demo_data import demo_invoices
from hub.ledger.receipt import verify_receipt
from hub.ledger.storage import read_checkpoint, read_leaf_data
from tests.schema.conftest import (
    AGENCY_FIN,
    AGENCY_FULL,
    AGENCY_NONE,
    AGENCY_SUM,
    HOSP_A,
    HOSP_B,
    World,
    code_of,
    doc_id,
)

ROLES = ("anon", "hospital", "agency", "patient", "witness", "auditor", "admin")
EVERYONE = set(ROLES)
WITH_TOKEN = EVERYONE - {"anon"}
READERS = {"hospital", "agency", "patient"}

DOC_QUERY = (
    "query($id: ID!) { document(id: $id) { id issuer version view status body salt digest"
    " leafIndex issuedAt } }"
)


def _tokens(w: World) -> dict[str, str | None]:
    patient = w.docs[HOSP_A][0]["patientRef"]
    return {
        "anon": None,
        "hospital": w.token("hospital", "his", HOSP_A),
        "agency": w.token("agency", "clerk", AGENCY_FIN),
        "patient": w.token("patient", patient, HOSP_A),
        "witness": w.token("witness", "w1"),
        "auditor": w.token("auditor", "a1"),
        "admin": w.token("admin", "root"),
    }


Op = Callable[[int], tuple[str, dict[str, Any]]]


def _operations(w: World, grant_id: str) -> dict[str, tuple[set[str], Op]]:
    doc0 = w.docs[HOSP_A][0]
    fresh = demo_invoices(120, seed=11)

    def key(_: int) -> str:
        raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    erase_target = w.docs[HOSP_B][-1]
    return {
        "checkpoint": (EVERYONE, lambda i: ("{ checkpoint { treeSize } }", {})),
        "consistencyProof": (
            EVERYONE,
            lambda i: ("{ consistencyProof(fromSize: 1) { toSize hashes } }", {}),
        ),
        "invoice": (
            {"anon"} | READERS,
            lambda i: (
                "query($c: String!, $n: String!, $k: String!) {"
                " invoice(billCode: $c, billNumber: $n, checkCode: $k) { id } }",
                {"c": doc0["billCode"], "n": doc0["billNumber"], "k": doc0["checkCode"]},
            ),
        ),
        "institutions": (WITH_TOKEN, lambda i: ("{ institutions { id kind } }", {})),
        "document": (
            READERS,
            lambda i: ("query($id: ID!) { document(id: $id) { id } }", {"id": doc_id(doc0)}),
        ),
        "documents": (READERS, lambda i: ("{ documents { totalCount } }", {})),
        "inclusionProof": (
            READERS,
            lambda i: (
                "query($id: ID!) { inclusionProof(documentId: $id) { leafIndex } }",
                {"id": doc_id(doc0)},
            ),
        ),
        "accessLog": (
            {"hospital", "agency", "patient", "auditor"},
            lambda i: ("{ accessLog { agency } }", {}),
        ),
        "grants": ({"agency", "auditor", "admin"}, lambda i: ("{ grants { id } }", {})),
        "submitDocuments": (
            {"hospital"},
            lambda i: (
                "mutation($d: [DocumentInput!]!) { submitDocuments(documents: $d)"
                " { results { status } checkpoint { treeSize } } }",
                {"d": [{"type": "medical_invoice", "id": doc_id(fresh[i]), "body": fresh[i]}]},
            ),
        ),
        "addInstitution": (
            {"admin"},
            lambda i: (
                'mutation($id: ID!) { addInstitution(id: $id, name: "New", kind: "hospital")'
                " { id } }",
                {"id": f"new-{i}"},
            ),
        ),
        "addIssuerKey": (
            {"admin"},
            lambda i: (
                'mutation($k: String!) { addIssuerKey(institution: "hosp-a", publicKey: $k) }',
                {"k": key(i)},
            ),
        ),
        "addGrant": (
            {"admin"},
            lambda i: (
                'mutation { addGrant(agency: "ag-none", type: "medical_invoice",'
                ' issuers: ["hosp-b"], view: SUMMARY, purpose: "p") { id } }',
                {},
            ),
        ),
        "revokeGrant": (
            {"admin"},
            lambda i: (
                "mutation($id: ID!) { revokeGrant(id: $id) { revokedAt } }",
                {"id": grant_id},
            ),
        ),
        "eraseDocument": (
            {"admin"},
            lambda i: (
                'mutation($id: ID!) { eraseDocument(issuer: "hosp-b", type: "medical_invoice",'
                " id: $id, version: 1) }",
                {"id": doc_id(erase_target)},
            ),
        ),
    }


async def test_role_operation_matrix(world: World) -> None:
    grant = await create_grant(
        world.hub,
        agency=AGENCY_NONE,
        type="medical_invoice",
        issuers=["*"],
        view="summary",
        purpose="to revoke",
        until=None,
    )
    tokens = _tokens(world)
    failures = []
    n = 0
    for name, (allowed, op) in _operations(world, grant.id).items():
        for role in ROLES:
            n += 1
            query, variables = op(n)
            result = await world.gql(query, variables, tokens[role])
            denied = "UNAUTHENTICATED" if role == "anon" else "FORBIDDEN"
            want = None if role in allowed else denied
            got = code_of(result)
            if got != want:
                failures.append((name, role, want, result))
            # A successful mutation must really have done something.
            if role in allowed and name == "submitDocuments":
                assert result["data"]["submitDocuments"]["results"][0]["status"] == "CREATED"
    assert not failures, failures


async def _same(
    world: World, query: str, hidden: dict[str, Any], missing: dict[str, Any], token: str | None
) -> bytes:
    seen = await world.post(query, hidden, token)
    absent = await world.post(query, missing, token)
    assert seen.status_code == absent.status_code == 200
    assert seen.content == absent.content
    assert code_of(seen.json()) == "NOT_FOUND"
    return seen.content


async def test_invisible_documents_answer_like_missing_ones(world: World) -> None:
    doc0 = world.docs[HOSP_A][0]
    other_patient = next(
        b["patientRef"] for b in world.docs[HOSP_B] if b["patientRef"] != doc0["patientRef"]
    )
    hidden = {"id": doc_id(doc0)}
    missing = {"id": "46999999-0000000001"}
    proof = "query($id: ID!) { inclusionProof(documentId: $id) { leafIndex receipt } }"
    for token in [
        world.token("agency", "clerk", AGENCY_NONE),  # no grant at all
        world.token("hospital", "his", HOSP_B),  # another hospital's invoice
        world.token("patient", other_patient, HOSP_B),  # someone else's invoice
    ]:
        await _same(world, DOC_QUERY, hidden, missing, token)
        await _same(world, proof, hidden, missing, token)
    # A grant for other issuers does not reach hosp-b's invoices.
    b0 = world.docs[HOSP_B][0]
    fin = world.token("agency", "clerk", AGENCY_FIN)
    await _same(world, DOC_QUERY, {"id": doc_id(b0)}, missing, fin)
    # Token-less lookup: a wrong check code reads like a bill that does not exist.
    invoice = (
        "query($c: String!, $n: String!, $k: String!) {"
        " invoice(billCode: $c, billNumber: $n, checkCode: $k) { id } }"
    )
    wrong = {"c": doc0["billCode"], "n": doc0["billNumber"], "k": "zzzzzz"}
    nothing = {"c": "46999999", "n": "0000000001", "k": doc0["checkCode"]}
    await _same(world, invoice, wrong, nothing, None)


async def test_views_show_exactly_their_fields_and_reads_are_logged(world: World) -> None:
    doc0 = world.docs[HOSP_A][0]
    variables = {"id": doc_id(doc0)}

    async def read(agency: str) -> dict[str, Any]:
        r = await world.gql(DOC_QUERY, variables, world.token("agency", "clerk", agency))
        assert "errors" not in r, r
        return r["data"]["document"]  # type: ignore[no-any-return]

    full = await read(AGENCY_FULL)
    assert full["view"] == "FULL" and full["body"] == doc0 and full["salt"]
    fin = await read(AGENCY_FIN)
    assert fin["view"] == "FINANCIAL" and fin["salt"] is None
    assert set(fin["body"]) == set(FINANCIAL_FIELDS)
    assert fin["body"]["totals"] == doc0["totals"]
    for hidden in ("items", "visit", "payer", "patientRef", "checkCode"):
        assert hidden not in fin["body"]
    summary = await read(AGENCY_SUM)
    assert summary["body"] == {
        "status": doc0["status"],
        "issuedAt": doc0["issuedAt"],
        "totals": {"total": doc0["totals"]["total"]},
    }
    # Metadata is the same in every view.
    for view in (fin, summary):
        assert {k: view[k] for k in ("id", "issuer", "digest", "leafIndex")} == {
            k: full[k] for k in ("id", "issuer", "digest", "leafIndex")
        }
    # The hospital's own read is not an agency access.
    await world.gql(DOC_QUERY, variables, world.token("hospital", "his", HOSP_A))

    patient = world.token("patient", doc0["patientRef"], HOSP_A)
    log = await world.gql(
        "query($id: ID!) { accessLog(documentId: $id) { agency documentId purpose leafIndex"
        " inclusionProof { receipt } } }",
        variables,
        patient,
    )
    assert "errors" not in log, log
    events = log["data"]["accessLog"]
    assert [(e["agency"], e["purpose"]) for e in events] == [
        (AGENCY_FULL, "insurance claims"),
        (AGENCY_FIN, "financial audit"),
        (AGENCY_SUM, "summary audit"),
    ]
    for e in events:
        data = await read_leaf_data(world.hub.db, e["leafIndex"])
        leaf = json.loads(data)
        assert leaf["kind"] == "access" and leaf["agency"] == e["agency"]
        assert leaf["document"]["id"] == doc_id(doc0)
        verify_receipt(e["inclusionProof"]["receipt"], world.hub.signer.verifier)
    # Another patient sees none of these reads.
    other = await world.gql(
        "query($id: ID!) { accessLog(documentId: $id) { agency } }",
        variables,
        world.token("patient", "P-nobody", HOSP_A),
    )
    assert other["data"]["accessLog"] == []


async def test_revoked_and_expired_grants_read_nothing(world: World) -> None:
    doc0 = world.docs[HOSP_A][0]
    fin = world.token("agency", "clerk", AGENCY_FIN)
    admin = world.token("admin", "root")
    count = "{ documents { totalCount edges { node { id } } } }"
    before = await world.gql(count, token=fin)
    assert before["data"]["documents"]["totalCount"] == len(world.docs[HOSP_A])

    grants = await world.gql("{ grants { id agency active } }", token=fin)
    [grant] = grants["data"]["grants"]
    assert grant["agency"] == AGENCY_FIN and grant["active"]
    size = (await read_checkpoint(world.hub.db)).size  # type: ignore[union-attr]
    r = await world.gql(
        "mutation($id: ID!) { revokeGrant(id: $id) { revokedAt active } }",
        {"id": grant["id"]},
        admin,
    )
    assert r["data"]["revokeGrant"]["active"] is False
    leaf = json.loads(await read_leaf_data(world.hub.db, size))
    assert (leaf["kind"], leaf["action"], leaf["id"]) == ("grant", "revoke", grant["id"])
    again = await world.gql(
        "mutation($id: ID!) { revokeGrant(id: $id) { id } }", {"id": grant["id"]}, admin
    )
    assert code_of(again) == "CONFLICT"

    after = await world.gql(count, token=fin)
    assert after["data"]["documents"] == {"totalCount": 0, "edges": []}
    gone = await world.gql(DOC_QUERY, {"id": doc_id(doc0)}, fin)
    assert code_of(gone) == "NOT_FOUND"

    # A grant whose window has passed reads nothing either.
    await create_grant(
        world.hub,
        agency=AGENCY_NONE,
        type="medical_invoice",
        issuers=["*"],
        view="full",
        purpose="old study",
        until="2020-06-30",
        now=datetime(2020, 1, 1, tzinfo=UTC),
    )
    none = world.token("agency", "clerk", AGENCY_NONE)
    expired = await world.gql(DOC_QUERY, {"id": doc_id(doc0)}, none)
    assert code_of(expired) == "NOT_FOUND"
    listed = await world.gql("{ grants { active validUntil } }", token=none)
    assert listed["data"]["grants"] == [{"active": False, "validUntil": "2020-06-30"}]
