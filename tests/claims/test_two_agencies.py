"""Two agencies claim the same invoice: the total never exceeds what is claimable, the
refused one is told what is left, a release makes it claimable again, and nobody but the
claimant can release a claim."""

import asyncio
from decimal import Decimal

from hub.claims.claimable import money_text
from tests.claims.conftest import (
    CLAIM,
    DOCUMENT_CLAIMS,
    HOSP,
    INSURER_A,
    INSURER_B,
    RELEASE,
    agency,
    claim,
    claimable,
    doc_id,
)
from tests.schema.conftest import World, code_of


async def test_two_agencies_never_claim_more_than_the_bill(claims_world: World) -> None:
    world = claims_world
    body = world.docs[HOSP][0]
    whole = claimable(body)
    a, b = agency(world, INSURER_A), agency(world, INSURER_B)
    first_part = (whole / 2).quantize(Decimal("0.01"))
    rest = whole - first_part

    booked = await claim(world, a, body, money_text(first_part), "A-2026-001")
    assert "errors" not in booked, booked
    by_a = booked["data"]["claimDocument"]
    assert (by_a["agency"], by_a["amount"], by_a["status"]) == (
        INSURER_A,
        money_text(first_part),
        "ACTIVE",
    )
    assert by_a["documentId"] == doc_id(body) and by_a["version"] == 1

    # B asks for the whole bill: refused, and told what is left.
    refused = await claim(world, b, body, money_text(whole), "B-77")
    assert code_of(refused) == "CONFLICT"
    message = refused["errors"][0]["message"]
    assert f"{money_text(rest)} of {money_text(whole)}" in message
    assert INSURER_A not in message and "A-2026-001" not in message

    # What is left fits; then nothing does.
    assert "errors" not in await claim(world, b, body, money_text(rest), "B-78")
    again = await claim(world, a, body, "0.01", "A-2026-002")
    assert code_of(again) == "CONFLICT"
    assert f"0.00 of {money_text(whole)}" in again["errors"][0]["message"]

    seen = await world.gql(DOCUMENT_CLAIMS, {"id": doc_id(body)}, b)
    assert seen["data"]["document"]["claimedAmount"] == money_text(whole)
    assert seen["data"]["document"]["claimableAmount"] == money_text(whole)

    # A release by another agency answers as a claim that does not exist.
    stolen = await world.gql(RELEASE, {"id": by_a["id"], "reason": "mine now"}, b)
    assert code_of(stolen) == "NOT_FOUND"
    missing = await world.gql(RELEASE, {"id": "c_000000000000000000000000", "reason": "x"}, b)
    assert code_of(missing) == "NOT_FOUND"
    assert stolen["errors"][0]["message"] == missing["errors"][0]["message"]

    released = await world.gql(RELEASE, {"id": by_a["id"], "reason": "claim withdrawn"}, a)
    assert released["data"]["releaseClaim"]["status"] == "RELEASED"
    assert released["data"]["releaseClaim"]["releaseLeafIndex"] > by_a["leafIndex"]
    twice = await world.gql(RELEASE, {"id": by_a["id"], "reason": "again"}, a)
    assert code_of(twice) == "CONFLICT"

    # The released amount is claimable again, by anyone.
    rebooked = await claim(world, b, body, money_text(first_part), "B-79")
    assert "errors" not in rebooked, rebooked
    assert code_of(await claim(world, a, body, "0.01")) == "CONFLICT"


async def test_claims_need_a_claims_grant_and_a_good_amount(claims_world: World) -> None:
    world = claims_world
    body = world.docs[HOSP][1]
    reader = world.token("agency", "clerk", "ag-read")
    assert code_of(await claim(world, reader, body, "1.00")) == "FORBIDDEN"
    hospital = world.token("hospital", "his", HOSP)
    assert code_of(await claim(world, hospital, body, "1.00")) == "FORBIDDEN"
    a = agency(world, INSURER_A)
    for bad in ("0", "0.00", "-1", "1.234", "1e3", "abc"):
        answer = await claim(world, a, body, bad)
        assert code_of(answer) == "BAD_INPUT", (bad, answer)
        assert "amount" in answer["errors"][0]["message"]
    assert code_of(await claim(world, a, body, "1.00", " ")) == "BAD_INPUT"
    nowhere = await world.gql(CLAIM, {"id": "99999999-0000000000", "amount": "1", "ref": "r"}, a)
    assert code_of(nowhere) == "NOT_FOUND"


async def test_concurrent_claims_on_one_bill_count_each_other(claims_world: World) -> None:
    """Concurrent bookings, group-committed together, count each other before any is
    written."""
    world = claims_world
    body = world.docs[HOSP][2]
    whole = claimable(body)
    share = (whole / 5).quantize(Decimal("0.01"), "ROUND_DOWN")
    tokens = [agency(world, INSURER_A), agency(world, INSURER_B)]
    answers = await asyncio.gather(
        *(claim(world, tokens[n % 2], body, money_text(share), f"case-{n}") for n in range(12))
    )
    booked = [a for a in answers if "errors" not in a]
    assert len(booked) == 5
    assert {code_of(a) for a in answers if "errors" in a} == {"CONFLICT"}
    seen = await world.gql(DOCUMENT_CLAIMS, {"id": doc_id(body)}, tokens[0])
    assert seen["data"]["document"]["claimedAmount"] == money_text(share * 5)
