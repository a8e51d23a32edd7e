"""Every argument a client controls is checked at the edge: extreme values are refused
with a code a client can act on, never INTERNAL and a logged traceback."""

import base64
import logging
from typing import Any

import pytest
from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    get_named_type,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schema.app import build_schema
from tests.schema.conftest import AGENCY_FULL, HOSP_A, World

HUGE = "9" * 26
EXTREME_STRINGS = [
    "",
    " ",
    HUGE,
    "-" + HUGE,
    "9999-12-31",
    "0001-01-01",
    "9999-12-31T23:59:59+14:00",
    "2026-02-30",
    base64.urlsafe_b64encode(f"leaf:{HUGE}".encode()).decode(),
    base64.urlsafe_b64encode(b"leaf:-1").decode(),
    "leaf:1",
    "\x00",
    "\ud7ff\U0010ffff",
    "*",
    "../../etc/passwd",
    "x" * 5000,
]
EXTREME_INTS = [0, -1, 1, 2**31 - 1, -(2**31)]
JSON_VALUES: list[Any] = [{}, [], "x", 10**30, {"a": HUGE}, None, [[[]]]]


def values(kind: GraphQLInputType) -> st.SearchStrategy[Any]:
    if isinstance(kind, GraphQLNonNull):
        return values_of(kind.of_type)
    return st.none() | values_of(kind)


def values_of(kind: Any) -> st.SearchStrategy[Any]:
    if isinstance(kind, GraphQLList):
        return st.lists(values(kind.of_type), max_size=3)
    if isinstance(kind, GraphQLEnumType):
        return st.sampled_from(list(kind.values))
    if isinstance(kind, GraphQLInputObjectType):
        fields = {name: values(f.type) for name, f in kind.fields.items()}
        return st.fixed_dictionaries({}, optional=fields)
    assert isinstance(kind, GraphQLScalarType)
    if kind.name == "Int":
        return st.sampled_from(EXTREME_INTS)
    if kind.name == "Boolean":
        return st.booleans()
    if kind.name == "Float":
        return st.sampled_from([0.0, -1e308, 1e308])
    if kind.name in ("String", "ID"):
        return st.sampled_from(EXTREME_STRINGS)
    return st.sampled_from(JSON_VALUES)


def operations() -> list[tuple[str, str, dict[str, GraphQLArgument], str]]:
    schema = build_schema()._schema
    found = []
    for keyword, root in (("query", schema.query_type), ("mutation", schema.mutation_type)):
        assert root is not None
        for name, field in root.fields.items():
            if not field.args:
                continue
            named = get_named_type(field.type)
            selection = " { __typename }" if isinstance(named, GraphQLObjectType) else ""
            found.append((keyword, name, field.args, selection))
    return found


OPERATIONS = operations()


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    keyword, name, args, selection = draw(st.sampled_from(OPERATIONS))
    chosen = {a: draw(values(arg.type)) for a, arg in args.items()}
    chosen = {
        a: v for a, v in chosen.items() if v is not None or isinstance(args[a].type, GraphQLNonNull)
    }
    declared = ", ".join(f"${a}: {args[a].type}" for a in chosen)
    passed = ", ".join(f"{a}: ${a}" for a in chosen)
    head = f"{keyword}({declared})" if declared else keyword
    call = f"{name}({passed})" if passed else name
    return f"{head} {{ {call}{selection} }}", chosen


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests(), who=st.sampled_from(["admin", "agency", "hospital", None]))
async def test_extreme_arguments_never_reach_internal(
    world: World,
    caplog: pytest.LogCaptureFixture,
    request: tuple[str, dict[str, Any]],
    who: str | None,
) -> None:
    caplog.set_level(logging.ERROR)
    caplog.clear()
    token = {
        "admin": world.token("admin", "ops"),
        "agency": world.token("agency", "clerk", AGENCY_FULL),
        "hospital": world.token("hospital", "his", HOSP_A),
        None: None,
    }[who]
    query, variables = request
    answer = await world.gql(query, variables, token)
    codes = {e.get("extensions", {}).get("code") for e in answer.get("errors") or ()}
    assert "INTERNAL" not in codes, (query, variables, answer)
    assert [r.getMessage() for r in caplog.records] == [], (query, variables)


async def test_a_cursor_holding_a_huge_number_is_refused(world: World) -> None:
    token = world.token("hospital", "his", HOSP_A)
    cursor = base64.urlsafe_b64encode(f"leaf:{HUGE}".encode()).decode()
    answer = await world.gql(
        "query($a: String) { documents(after: $a) { totalCount } }", {"a": cursor}, token
    )
    assert answer["errors"][0]["extensions"]["code"] == "BAD_INPUT"
    assert "after" in answer["errors"][0]["message"]


async def test_a_grant_until_the_last_day_of_the_calendar_is_refused(world: World) -> None:
    answer = await world.gql(
        'mutation { addGrant(agency: "ag-none", type: "medical_invoice", issuers: ["*"],'
        ' view: SUMMARY, purpose: "audit", until: "9999-12-31") { id } }',
        token=world.token("admin", "ops"),
    )
    assert answer["errors"][0]["extensions"]["code"] == "BAD_INPUT"
    assert "until" in answer["errors"][0]["message"]


def benign(kind: GraphQLInputType) -> Any:
    """A plain value of the type, for the arguments a sweep does not vary."""
    if isinstance(kind, GraphQLNonNull):
        kind = kind.of_type
    if isinstance(kind, GraphQLList):
        return []
    if isinstance(kind, GraphQLEnumType):
        return next(iter(kind.values))
    if isinstance(kind, GraphQLInputObjectType):
        return {
            n: benign(f.type) for n, f in kind.fields.items() if isinstance(f.type, GraphQLNonNull)
        }
    assert isinstance(kind, GraphQLScalarType)
    return {"Int": 1, "Boolean": False, "Float": 1.0, "String": "x", "ID": "x"}.get(kind.name, {})


def extremes(kind: GraphQLInputType) -> list[Any]:
    named = get_named_type(kind)
    if isinstance(named, GraphQLScalarType) and named.name in ("String", "ID"):
        return EXTREME_STRINGS
    if isinstance(named, GraphQLScalarType) and named.name == "Int":
        return EXTREME_INTS
    return []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("who", ["admin", "agency", "hospital"])
async def test_each_argument_in_turn_takes_each_extreme_value(
    world: World, caplog: pytest.LogCaptureFixture, who: str
) -> None:
    caplog.set_level(logging.ERROR)
    token = {
        "admin": world.token("admin", "ops"),
        "agency": world.token("agency", "clerk", AGENCY_FULL),
        "hospital": world.token("hospital", "his", HOSP_A),
    }[who]
    for keyword, name, args, selection in OPERATIONS:
        for varied, arg in args.items():
            for value in extremes(arg.type):
                variables = {a: benign(x.type) for a, x in args.items() if a != varied}
                variables[varied] = value if not isinstance(arg.type, GraphQLList) else [value]
                declared = ", ".join(f"${a}: {args[a].type}" for a in variables)
                passed = ", ".join(f"{a}: ${a}" for a in variables)
                query = f"{keyword}({declared}) {{ {name}({passed}){selection} }}"
                answer = await world.gql(query, variables, token)
                codes = {e.get("extensions", {}).get("code") for e in answer.get("errors") or ()}
                assert "INTERNAL" not in codes, (query, variables, answer)
    assert [r.getMessage() for r in caplog.records] == []
