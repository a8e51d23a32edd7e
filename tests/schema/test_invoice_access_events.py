"""`Document.accessEvents`: the holder of an invoice's printed codes sees who read it."""

from tests.schema.conftest import AGENCY_FULL, HOSP_B, World, doc_id

INVOICE = (
    "query($c: String!, $n: String!, $k: String!) {"
    " invoice(billCode: $c, billNumber: $n, checkCode: $k) {"
    " accessEvents { agency purpose version documentId leafIndex } } }"
)


def codes(body: dict[str, str]) -> dict[str, str]:
    return {"c": body["billCode"], "n": body["billNumber"], "k": body["checkCode"]}


async def test_invoice_lookup_shows_reads_of_that_invoice_only(world: World) -> None:
    read, unread = world.docs[HOSP_B][0], world.docs[HOSP_B][1]
    agency = world.token("agency", "analyst", AGENCY_FULL)
    got = await world.gql(
        "query($id: ID!) { document(id: $id) { body } }", {"id": doc_id(read)}, agency
    )
    assert got["data"]["document"]["body"] is not None

    shown = await world.gql(INVOICE, codes(read))
    events = shown["data"]["invoice"]["accessEvents"]
    assert [(e["agency"], e["purpose"], e["documentId"]) for e in events] == [
        (AGENCY_FULL, "insurance claims", doc_id(read))
    ]
    assert (await world.gql(INVOICE, codes(unread)))["data"]["invoice"]["accessEvents"] == []


async def test_other_lookups_do_not_carry_access_events(world: World) -> None:
    body = world.docs[HOSP_B][0]
    hospital = world.token("hospital", "his", HOSP_B)
    got = await world.gql(
        "query($id: ID!) { document(id: $id) { accessEvents { agency } } }",
        {"id": doc_id(body)},
        hospital,
    )
    assert got["data"]["document"]["accessEvents"] is None
