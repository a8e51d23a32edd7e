"""An access leaf written during a request is proved against a checkpoint that has it."""

from tests.schema.conftest import AGENCY_FULL, HOSP_A, World, doc_id


async def test_a_read_and_its_access_leaf_are_proved_in_one_request(world: World) -> None:
    body = world.docs[HOSP_A][0]
    token = world.token("agency", "clerk", AGENCY_FULL)
    answer = await world.gql(
        "query($id: ID!) { document(id: $id) { body inclusionProof { treeSize } }"
        " accessLog(documentId: $id) { leafIndex inclusionProof { leafIndex treeSize } } }",
        {"id": doc_id(body)},
        token,
    )
    assert "errors" not in answer, answer
    (event,) = answer["data"]["accessLog"]
    proof = event["inclusionProof"]
    assert proof["leafIndex"] == event["leafIndex"] < proof["treeSize"]


PAGE = (
    "query($after: String) { accessLogConnection(first: 3, after: $after) {"
    " edges { cursor node { agency documentId leafIndex } }"
    " pageInfo { hasNextPage endCursor } totalCount } }"
)


async def test_the_access_log_pages_through_every_event(world: World) -> None:
    agency = world.token("agency", "clerk", AGENCY_FULL)
    read = await world.gql("{ documents(first: 20) { edges { node { body } } } }", token=agency)
    assert "errors" not in read, read
    for who in (agency, world.token("auditor", "eve")):
        listed = await world.gql("{ accessLog { agency documentId leafIndex } }", token=who)
        everything = listed["data"]["accessLog"]
        assert len(everything) == 8
        seen, after, pages = [], None, 0
        while True:
            page = (await world.gql(PAGE, {"after": after}, who))["data"]["accessLogConnection"]
            assert page["totalCount"] == len(everything)
            seen += [edge["node"] for edge in page["edges"]]
            pages += 1
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert seen == everything and pages == 3
    # A hospital sees the reads of its own documents only, paged the same way.
    hospital = world.token("hospital", "his", HOSP_A)
    own = (await world.gql(PAGE, {"after": None}, hospital))["data"]["accessLogConnection"]
    assert own["totalCount"] == len(world.docs[HOSP_A])
    bad = await world.gql(PAGE, {"after": "bGVhZjp4"}, agency)
    assert bad["errors"][0]["extensions"]["code"] == "BAD_INPUT"
