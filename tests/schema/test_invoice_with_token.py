"""`invoice` with a token: the printed codes find the bill, the token decides what is read.

Without a token the holder of the paper reads the whole invoice. With one, the caller is
answered as who it is: an agency reads through its grant (its view, an `access` leaf), a
principal that may not read the invoice gets the answer of a bill that does not exist.
"""

from typing import Any

import pytest

from tests.schema.conftest import (
    AGENCY_FIN,
    AGENCY_NONE,
    HOSP_A,
    HOSP_B,
    World,
    code_of,
    doc_id,
)

INVOICE = (
    "query($c: String!, $n: String!, $k: String!) {"
    " invoice(billCode: $c, billNumber: $n, checkCode: $k) { id view body salt } }"
)
LOG = "query($id: ID) { accessLog(documentId: $id) { agency documentId purpose } }"
TREE = "{ checkpoint { treeSize } }"


def codes(body: dict[str, Any]) -> dict[str, str]:
    return {"c": body["billCode"], "n": body["billNumber"], "k": body["checkCode"]}


async def tree_size(world: World) -> int:
    size: int = (await world.gql(TREE))["data"]["checkpoint"]["treeSize"]
    return size


async def test_an_agency_reads_through_its_grant_and_the_read_is_on_the_ledger(
    world: World,
) -> None:
    body = world.docs[HOSP_A][0]
    agency = world.token("agency", "analyst", AGENCY_FIN)
    before = await tree_size(world)
    got = (await world.gql(INVOICE, codes(body), agency))["data"]["invoice"]
    assert got["view"] == "FINANCIAL"
    assert "items" not in got["body"] and got["salt"] is None
    assert got["body"]["totals"] == body["totals"]
    assert await tree_size(world) == before + 1  # the access leaf
    auditor = world.token("auditor", "audit")
    log = (await world.gql(LOG, {"id": doc_id(body)}, auditor))["data"]["accessLog"]
    assert [(e["agency"], e["purpose"]) for e in log] == [(AGENCY_FIN, "financial audit")]


@pytest.mark.parametrize(
    ("role", "inst"),
    [
        ("agency", AGENCY_NONE),  # no grant
        ("agency", AGENCY_FIN),  # a grant for the other hospital only
        ("hospital", HOSP_A),  # another hospital's bill
        ("patient", None),  # someone else's bill
    ],
)
async def test_who_may_not_read_it_is_answered_as_for_a_bill_that_does_not_exist(
    world: World, role: str, inst: str | None
) -> None:
    body = world.docs[HOSP_B][0]
    token = world.token(role, "P-nobody", inst)
    before = await tree_size(world)
    real = await world.gql(INVOICE, codes(body), token)
    missing = await world.gql(INVOICE, {**codes(body), "n": "9999999999"}, token)
    assert code_of(real) == "NOT_FOUND"
    assert real == missing
    assert await tree_size(world) == before


async def test_owners_and_the_paper_read_everything(world: World) -> None:
    body = world.docs[HOSP_B][0]
    for token in (
        None,
        world.token("hospital", "his", HOSP_B),
        world.token("patient", body["patientRef"], HOSP_B),
    ):
        got = (await world.gql(INVOICE, codes(body), token))["data"]["invoice"]
        assert (got["id"], got["view"], got["body"]) == (doc_id(body), "FULL", body)
        assert got["salt"] is not None


@pytest.mark.parametrize("role", ["admin", "auditor", "witness"])
async def test_roles_that_never_read_bodies_are_refused_whatever_the_codes(
    world: World, role: str
) -> None:
    body = world.docs[HOSP_B][0]
    token = world.token(role, "staff")
    real = await world.gql(INVOICE, codes(body), token)
    missing = await world.gql(INVOICE, {**codes(body), "n": "9999999999"}, token)
    assert code_of(real) == "FORBIDDEN"
    assert real == missing
