"""The error contract over HTTP: every refusal is a GraphQL answer with extensions.code, no
message quotes what the client sent, prod suggests no schema names, rate limits say when
to come back."""

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import GraphQLEnumType, build_schema

from hub.access.ratelimit import GuessLimiter, RateLimiter
from hub.access.views import project
from hub.app import create_app
from hub.documents.demo_data import demo_invoices
from schema.context import Guards
from schema.export import DEFAULT_PATH
from tests.schema.conftest import HOSP_A, World, code_of, doc_id, issuer_for, start_hub

CHECKPOINT = "{ checkpoint { treeSize } }"
SUBMIT = (
    "mutation($d: [DocumentInput!]!) { submitDocuments(documents: $d)"
    " { results { status } checkpoint { treeSize } } }"
)
NESTED = "[" * 5000 + "]" * 5000  # ~10 KB


def assert_refused(response: httpx.Response, status: int, code: str = "BAD_INPUT") -> str:
    """The answer is a GraphQL error with ``code``; its message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["data"] is None and len(body["errors"]) == 1, body
    error = body["errors"][0]
    assert error["extensions"]["code"] == code and error["message"], body
    message: str = error["message"]
    return message


async def test_deeply_nested_json_is_bad_input(world: World) -> None:
    # The world's client re-raises what the app raises: a crash in metrics would fail here.
    body = '{"query": "query($x: JSON) { checkpoint { treeSize } }", "variables": {"x": NESTED}}'
    for headers in [{}, {"Authorization": f"Bearer {world.token('auditor', 'a1')}"}]:
        response = await world.client.post(
            "/graphql",
            content=body.replace("NESTED", NESTED),
            headers={"content-type": "application/json", **headers},
        )
        assert "nested too deeply" in assert_refused(response, 400)
    response = await world.client.get(
        "/graphql", params={"query": CHECKPOINT, "variables": f'{{"x": {NESTED}}}'}
    )
    assert_refused(response, 400)
    assert code_of(await world.gql(CHECKPOINT)) is None  # and the server is fine


@pytest.mark.parametrize(
    ("request_args", "status"),
    [
        ({"json": [{"query": CHECKPOINT}]}, 400),  # a batch
        ({"content": b"{nope", "headers": {"content-type": "application/json"}}, 400),
        ({"content": b'"a string"', "headers": {"content-type": "application/json"}}, 400),
        ({"data": {"query": CHECKPOINT}}, 415),  # a form
        ({"content": CHECKPOINT, "headers": {"content-type": "text/plain"}}, 415),
    ],
    ids=["batch", "malformed", "not-an-object", "form", "text"],
)
async def test_transport_refusals_are_graphql_errors(
    world: World, request_args: dict[str, Any], status: int
) -> None:
    assert_refused(await world.client.post("/graphql", **request_args), status)


async def test_wrong_methods_are_graphql_errors(world: World) -> None:
    mutation = 'mutation { revokeGrant(id: "1") { id } }'
    response = await world.client.get("/graphql", params={"query": mutation})
    assert "GET" in assert_refused(response, 405)
    assert response.headers["allow"] == "POST"
    response = await world.client.put("/graphql", json={"query": CHECKPOINT})
    assert_refused(response, 405)
    # Queries over GET and GraphiQL in dev are as before.
    response = await world.client.get("/graphql", params={"query": CHECKPOINT})
    assert response.status_code == 200 and code_of(response.json()) is None
    page = await world.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()


LEAKS = ("P-LEAKREF", "Leak02", "654321")


def assert_no_values(message: str) -> None:
    for leak in LEAKS:
        assert leak not in message, message


async def test_variable_errors_name_the_problem_but_never_echo_values(world: World) -> None:
    token = world.token("hospital", "his", HOSP_A)
    body = {**demo_invoices(1, seed=91)[0], "patientRef": "P-LEAKREF", "checkCode": "Leak02"}
    document = {"type": "medical_invoice", "id": doc_id(body), "body": body}
    cases = [
        ({**document, "foo": 1}, "[0]", "unknown field 'foo'"),
        ({**document, "P-LEAKREF": 1}, "[0]", "unknown field"),
        ({**document, "type": ["Leak02"]}, "[0].type", "String"),
        ({k: v for k, v in document.items() if k != "type"}, "[0]", "required field 'type'"),
        ({**document, "issuedAt": {"patientRef": "P-LEAKREF"}}, "[0].issuedAt", "String"),
        ("P-LEAKREF", "[0]", "object"),
    ]
    for given, path, problem in cases:
        result = await world.gql(SUBMIT, {"d": [given]}, token)
        assert result["data"] is None and code_of(result) == "BAD_INPUT"
        message = result["errors"][0]["message"]
        assert message.startswith(f"Variable '$d' has invalid value at {path}:"), message
        assert problem in message
        assert_no_values(message)


async def test_literal_and_syntax_errors_never_echo_values(world: World) -> None:
    for query in [
        '{ invoice(billCode: 654321, billNumber: "1", checkCode: "x") { id } }',
        '{ invoice(billCode: "1", billNumber: "1", checkCode: Leak02) { id } }',
        "{ documents(filter: {status: Leak02}) { totalCount } }",
        '{ documents(filter: {issuer: "h", patientRef: "P-LEAKREF"}) { totalCount } }',
        '{ invoice(billCode "P-LEAKREF") { id } }',
        "{ invoice(billCode: 0654321) { id } }",
    ]:
        result = await world.gql(query)
        assert result["data"] is None and code_of(result) == "BAD_INPUT", query
        for error in result["errors"]:
            assert_no_values(error["message"])


TYPO = "{ checkpont { treeSize } }"
MISTYPED_FIELD = {
    "query": SUBMIT,
    "variables": {"d": [{"type": "t", "id": "x", "body": {}, "typ": 1}]},
}


async def test_dev_suggests_schema_names(world: World) -> None:
    typo = await world.gql(TYPO)
    assert "Did you mean 'checkpoint'?" in typo["errors"][0]["message"]
    # A mutation's variables are checked once it has a token (anonymous ones stop before).
    hospital = {"Authorization": f"Bearer {world.token('hospital', 'his', HOSP_A)}"}
    field = await world.client.post("/graphql", json=MISTYPED_FIELD, headers=hospital)
    assert "Did you mean 'type'?" in field.json()["errors"][0]["message"]


async def test_prod_suggests_no_schema_names(database_url: str, tmp_path: Path) -> None:
    hub = await start_hub(database_url, tmp_path, env="prod")
    token = issuer_for(hub).issue(role="hospital", sub="his", inst=HOSP_A)
    hospital = {"Authorization": f"Bearer {token}"}
    try:
        transport = httpx.ASGITransport(app=create_app(hub=hub))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            answers = [
                await client.post("/graphql", json={"query": TYPO}),
                await client.get("/graphql", params={"query": TYPO}),
                await client.post("/graphql", json=MISTYPED_FIELD, headers=hospital),
            ]
    finally:
        await hub.stop()
    for answer in answers:
        assert code_of(answer.json()) == "BAD_INPUT"
        message = answer.json()["errors"][0]["message"]
        assert "Did you mean" not in message and "'checkpoint'" not in message, message
        assert "'type'" not in message, message


async def test_rate_limited_answers_say_when_to_retry(world: World) -> None:
    world.hub.extras["graphql.guards"] = Guards(
        RateLimiter(100.0, 1, clock=world.clock), GuessLimiter(clock=world.clock)
    )
    token = world.token("auditor", "a1")
    assert code_of(await world.gql(CHECKPOINT, token=token)) is None
    # 10 ms until the next token: a whole second, not "0.0 s", and a Retry-After to match.
    limited = await world.post(CHECKPOINT, token=token)
    assert code_of(limited.json()) == "RATE_LIMITED"
    assert limited.json()["errors"][0]["message"] == "too many requests: retry in 1 s"
    assert limited.headers["retry-after"] == "1"
    over_get = await world.client.get(
        "/graphql", params={"query": CHECKPOINT}, headers={"Authorization": f"Bearer {token}"}
    )
    assert code_of(over_get.json()) == "RATE_LIMITED" and over_get.headers["retry-after"] == "1"
    world.clock.now += int(limited.headers["retry-after"])  # a client that waits gets in
    ok = await world.post(CHECKPOINT, token=token)
    assert code_of(ok.json()) is None and "retry-after" not in ok.headers


def test_the_schema_says_what_each_view_shows() -> None:
    """The View enum's descriptions (in the exported SDL) name exactly the body fields a
    view shows, before "only"; a partly shown object's fields are named as totals.total."""
    views = build_schema(DEFAULT_PATH.read_text()).type_map["View"]
    assert isinstance(views, GraphQLEnumType)
    body = demo_invoices(1, seed=5)[0]
    for name in ("FINANCIAL", "SUMMARY"):
        shown_part = (views.values[name].description or "").split(" only")[0]
        named = set(re.findall(r"[a-zA-Z]+(?:\.[a-zA-Z]+)?", shown_part))
        shown = project(body, name.lower())
        for field, value in body.items():
            partly = {n for n in named if n.startswith(f"{field}.")}
            assert (field in shown) == (field in named or bool(partly)), (name, field)
            if field in shown and isinstance(value, dict) and shown[field] != value:
                assert {f"{field}.{sub}" for sub in shown[field]} == partly, (name, field)


async def test_add_institution_checks_the_id(world: World) -> None:
    admin = world.token("admin", "root")
    add = 'mutation($id: ID!) { addInstitution(id: $id, name: "N", kind: "agency") { id } }'
    for bad in ["bad id with spaces", "", "x" * 65, "ag/1", "ag\n1"]:
        refused = await world.gql(add, {"id": bad}, admin)
        assert code_of(refused) == "BAD_INPUT", bad
        assert "letter" in refused["errors"][0]["message"]
    for good in ["ag.tax_bureau-2", "A01", "x" * 64]:
        added = await world.gql(add, {"id": good}, admin)
        assert added["data"] == {"addInstitution": {"id": good}}, added
