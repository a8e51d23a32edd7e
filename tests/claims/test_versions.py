"""Claims follow a bill's versions: a superseded or erased version takes no claim, and a
correction keeps the claims made before it within the bill's claimable amount."""

import copy

from hub.claims.claimable import money_text
from tests.claims.conftest import (
    CLAIM,
    DOCUMENT_CLAIMS,
    HOSP,
    INSURER_A,
    INSURER_B,
    SUBMIT,
    agency,
    claim,
    claimable,
    doc_id,
)
from tests.schema.conftest import World, code_of


async def test_a_correction_supersedes_and_keeps_the_earlier_claims(claims_world: World) -> None:
    world = claims_world
    body = world.docs[HOSP][3]
    whole = claimable(body)
    a, b = agency(world, INSURER_A), agency(world, INSURER_B)
    assert "errors" not in await claim(world, a, body, "1.00", "A-1")

    corrected = copy.deepcopy(body)
    corrected["visit"]["department"] = "Corrected Department"
    hospital = world.token("hospital", "his", HOSP)
    submitted = await world.gql(
        SUBMIT,
        {
            "d": [
                {"type": "medical_invoice", "id": doc_id(body), "body": corrected, "supersedes": 1}
            ]
        },
        hospital,
    )
    assert submitted["data"]["submitDocuments"]["results"][0]["status"] == "CREATED"

    old = await world.gql(
        CLAIM, {"id": doc_id(body), "amount": "1.00", "ref": "B", "version": 1}, b
    )
    assert code_of(old) == "CONFLICT"
    assert "superseded by version 2" in old["errors"][0]["message"]
    assert "0.00 still claimable" in old["errors"][0]["message"]
    # The claim on version 1 still counts against the corrected bill.
    too_much = await claim(world, b, corrected, money_text(whole))
    assert code_of(too_much) == "CONFLICT"
    assert f"{money_text(whole - 1)} of {money_text(whole)}" in too_much["errors"][0]["message"]
    fits = (await claim(world, b, corrected, money_text(whole - 1)))["data"]["claimDocument"]
    assert fits["version"] == 2
    seen = (await world.gql(DOCUMENT_CLAIMS, {"id": doc_id(body)}, a))["data"]["document"]
    assert seen["claimedAmount"] == money_text(whole)
    assert [c["status"] for c in seen["claims"]] == ["ACTIVE"]  # a correction disputes nothing


async def test_an_erased_version_takes_no_claim(claims_world: World) -> None:
    world = claims_world
    body = world.docs[HOSP][4]
    admin = world.token("admin", "ops")
    erased = await world.gql(
        'mutation($id: ID!) { eraseDocument(issuer: "hosp-a", type: "medical_invoice",'
        " id: $id, version: 1) }",
        {"id": doc_id(body)},
        admin,
    )
    assert erased["data"]["eraseDocument"] is True
    refused = await claim(world, agency(world, INSURER_A), body, "1.00")
    assert code_of(refused) == "CONFLICT"
    assert "erased" in refused["errors"][0]["message"]
    assert "0.00 still claimable" in refused["errors"][0]["message"]
