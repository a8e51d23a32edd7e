"""Who sees what of claims: agency B never learns agency A's name or reference, the
patient sees both, another patient and the hospital see nothing, and B's answers for a
bill claimed elsewhere and one never claimed differ only in the total."""

import json
from typing import Any

from tests.claims.conftest import (
    CLAIM,
    DOCUMENT_CLAIMS,
    HOSP,
    INSURER_A,
    INSURER_B,
    agency,
    claim,
    doc_id,
    patient_of,
)
from tests.schema.conftest import World, code_of

SECRET_REF = "A-CASE-424242"
# Every field a document answer has, claims included.
EVERYTHING = (
    "query($id: ID!) { document(id: $id) { id type issuer version status body salt digest"
    " leafIndex issuedAt view claimableAmount claimedAmount"
    " claims { id documentId issuer version agency amount reference status at leafIndex salt"
    " releasedAt releaseReason releaseLeafIndex } } }"
)
LISTED = "{ claims { id agency amount reference status } }"
INVOICE = (
    "query($c: String!, $n: String!, $k: String!) {"
    " invoice(billCode: $c, billNumber: $n, checkCode: $k) {"
    " claimableAmount claimedAmount claims { agency amount reference at } } }"
)


def codes(body: dict[str, Any]) -> dict[str, str]:
    return {"c": body["billCode"], "n": body["billNumber"], "k": body["checkCode"]}


async def test_another_agency_learns_only_the_total(claims_world: World) -> None:
    world = claims_world
    body = world.docs[HOSP][0]
    a, b = agency(world, INSURER_A), agency(world, INSURER_B)
    variables = {"id": doc_id(body)}

    never_claimed = await world.gql(EVERYTHING, variables, b)
    assert "errors" not in never_claimed, never_claimed
    booked = await claim(world, a, body, "3.00", SECRET_REF)
    assert "errors" not in booked, booked
    claimed_elsewhere = await world.gql(EVERYTHING, variables, b)

    before = never_claimed["data"]["document"]
    after = claimed_elsewhere["data"]["document"]
    assert before["claimedAmount"] == "0.00" and after["claimedAmount"] == "3.00"
    assert {k for k in before if before[k] != after[k]} == {"claimedAmount"}
    assert after["claims"] == []

    # Nothing B can ask names A or A's case number.
    answers = [
        claimed_elsewhere,
        await world.gql(LISTED, token=b),
        await world.gql(INVOICE, codes(body), b),
        await world.gql(
            "{ documents(first: 50) { edges { node { claimedAmount claims { agency } } } } }",
            token=b,
        ),
        await world.gql("{ accessLog { agency } }", token=b),
        await world.gql(CLAIM, {"id": doc_id(body), "amount": "99999.00", "ref": "B-1"}, b),
    ]
    text = json.dumps(answers, ensure_ascii=False)
    assert INSURER_A not in text and SECRET_REF not in text
    assert code_of(answers[-1]) == "CONFLICT"

    # A sees its own claim in full, salt included.
    own = (await world.gql(EVERYTHING, variables, a))["data"]["document"]["claims"]
    assert [(c["agency"], c["reference"], c["amount"]) for c in own] == [
        (INSURER_A, SECRET_REF, "3.00")
    ]
    assert own[0]["salt"]


async def test_the_patient_sees_every_claim_and_others_nothing(claims_world: World) -> None:
    world = claims_world
    body = world.docs[HOSP][0]
    a, b = agency(world, INSURER_A), agency(world, INSURER_B)
    assert "errors" not in await claim(world, a, body, "2.00", SECRET_REF)
    assert "errors" not in await claim(world, b, body, "1.50", "B-9")
    expected = {(INSURER_A, "2.00", SECRET_REF), (INSURER_B, "1.50", "B-9")}

    patient = patient_of(world, body)
    mine = (await world.gql(DOCUMENT_CLAIMS, {"id": doc_id(body)}, patient))["data"]["document"]
    assert {(c["agency"], c["amount"], c["reference"]) for c in mine["claims"]} == expected
    assert all(c["at"] and c["status"] == "ACTIVE" for c in mine["claims"])
    assert mine["claimedAmount"] == "3.50"
    listed = (await world.gql(LISTED, token=patient))["data"]["claims"]
    assert {(c["agency"], c["amount"], c["reference"]) for c in listed} == expected
    # The holder of the printed codes is the patient (the verify page asks this way).
    by_codes = (await world.gql(INVOICE, codes(body)))["data"]["invoice"]
    assert {(c["agency"], c["amount"], c["reference"]) for c in by_codes["claims"]} == expected

    # Another patient of the same hospital: the document does not exist, nor do claims.
    other_ref = next(
        d["patientRef"] for d in world.docs[HOSP] if d["patientRef"] != body["patientRef"]
    )
    other = world.token("patient", other_ref, HOSP)
    hidden = await world.gql(DOCUMENT_CLAIMS, {"id": doc_id(body)}, other)
    assert code_of(hidden) == "NOT_FOUND"
    assert (await world.gql(LISTED, token=other))["data"]["claims"] == []

    # The issuing hospital sees the bill, but nothing of its claims.
    hospital = world.token("hospital", "his", HOSP)
    issued = (await world.gql(DOCUMENT_CLAIMS, {"id": doc_id(body)}, hospital))["data"]
    assert issued["document"]["claims"] == [] and issued["document"]["claimedAmount"] is None
    assert (await world.gql(LISTED, token=hospital))["data"]["claims"] == []
    # An agency that may read but not claim learns nothing either.
    reader = world.token("agency", "clerk", "ag-read")
    read = (await world.gql(DOCUMENT_CLAIMS, {"id": doc_id(body)}, reader))["data"]["document"]
    assert read["claims"] == [] and read["claimedAmount"] is None
