"""The hub's execution shortcuts answer exactly as strawberry's own execution does.

``schema.resolvers`` swaps strawberry's resolver pipeline for getattr and direct calls,
and ``schema.executor`` completes plain leaves in one step and awaits top-level fields in
turn. Here one small schema runs both ways — values, nulls where the type forbids them,
enums, lists, arguments, errors and their paths — and the answers must be identical.
"""

import asyncio
import enum
from typing import Any

import pytest
import strawberry
from graphql import ExecutionResult, execute, parse
from strawberry.types import Info

from schema.executor import HubExecutionContext
from schema.resolvers import use_attribute_resolvers


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Item:
    name: str
    colour: Colour
    tags: list[str]
    maybe_tags: list[str | None] | None
    size: int | None
    parent: "Item | None" = None


@strawberry.input
class Filter:
    colour: Colour
    names: list[str]
    note: strawberry.scalars.JSON | None = None
    size: int | None = 5
    inner: "Filter | None" = None


@strawberry.type
class Query:
    @strawberry.field
    async def echo(self, filters: list[Filter], extra: list[int] | None = None) -> str:
        # The converted arguments as Python sees them: types, values and defaults.
        def show(f: Filter | None) -> object:
            if f is None:
                return None
            return [type(f).__name__, f.colour, f.names, f.note, f.size, show(f.inner)]

        return repr([[show(f) for f in filters], extra])

    @strawberry.field
    async def item(self, info: Info, id: strawberry.ID, size: int | None = 3) -> Item:
        if id == "boom":
            raise ValueError("no such item")
        return Item(
            name=f"item {id} for {info.context['who']}",
            colour=Colour.BLUE,
            tags=["a", "b"],
            maybe_tags=["x", None],
            size=size,
        )

    @strawberry.field
    def broken(self) -> Item:
        # A value the types forbid: a null name and a null inside a list of non-null.
        return Item(name=None, colour=Colour.RED, tags=["a", None], maybe_tags=None, size=None)  # type: ignore[arg-type]

    @strawberry.field
    async def slow(self) -> int:
        await asyncio.sleep(0)
        return 7

    @strawberry.field
    def items(self) -> list[Item]:
        root = Item(name="root", colour=Colour.BLUE, tags=["r"], maybe_tags=None, size=None)
        return [
            Item(
                name=str(i),
                colour=Colour.RED,
                tags=[],
                maybe_tags=None,
                size=i,
                parent=root if i == 1 else None,
            )
            for i in range(3)
        ]

    @strawberry.field
    def mixed(self) -> list[Item | None]:
        # The second item breaks its non-null name: it alone must become null.
        good = Item(name="ok", colour=Colour.RED, tags=[], maybe_tags=None, size=1)
        bad = Item(name=None, colour=Colour.RED, tags=[], maybe_tags=None, size=2)  # type: ignore[arg-type]
        return [good, bad, good]


QUERIES = [
    '{ item(id: "1") { name colour tags maybeTags size } slow }',
    '{ item(id: "2", size: null) { size } a: item(id: "3", size: 9) { size name } }',
    '{ item(id: "boom") { name } slow }',
    "{ broken { name } }",
    "{ broken { tags } }",
    "{ broken { colour maybeTags size } }",
    "{ items { name size colour __typename } }",
    "{ items { name tags parent { name size parent { name } } } }",
    "{ items { n: name name size @skip(if: true) parent { tags } } }",
    "{ mixed { size name } }",
    "{ mixed { size parent { name } } }",
    "query Q($id: ID!) { item(id: $id) { name } }",
    '{ echo(filters: [{colour: RED, names: ["a"]}]) }',
    '{ echo(filters: [{colour: BLUE, names: [], note: {a: [1, "x"]}, size: null,'
    ' inner: {colour: RED, names: ["b"]}}], extra: [1, 2]) }',
    "query E($f: [Filter!]!) { echo(filters: $f) }",
]


def _plain() -> strawberry.Schema:
    return strawberry.Schema(query=Query)


def _hub() -> strawberry.Schema:
    schema = strawberry.Schema(query=Query, execution_context_class=HubExecutionContext)
    assert use_attribute_resolvers(schema) > 0
    return schema


async def _run(schema: strawberry.Schema, query: str) -> ExecutionResult:
    result = execute(
        schema._schema,
        parse(query),
        context_value={"who": "tester"},
        variable_values={
            "id": "v",
            "f": [{"colour": "BLUE", "names": ["n"], "note": {"deep": [None, True]}}],
        },
        executor_class=schema.execution_context_class,
    )
    if not isinstance(result, ExecutionResult):
        result = await result
    return result


def _shape(result: ExecutionResult) -> dict[str, Any]:
    errors = sorted(
        (e.message, tuple(e.path or ()), tuple((loc.line, loc.column) for loc in e.locations or ()))
        for e in result.errors or ()
    )
    return {"data": result.data, "errors": errors}


@pytest.mark.parametrize("query", QUERIES)
async def test_the_hub_execution_answers_as_strawberry_does(query: str) -> None:
    expected = _shape(await _run(_plain(), query))
    assert _shape(await _run(_hub(), query)) == expected


async def test_a_failing_top_level_field_leaves_no_coroutine_behind(
    recwarn: pytest.WarningsRecorder,
) -> None:
    result = await _run(_hub(), '{ item(id: "boom") { name } slow }')
    assert result.data is None
    assert [e.message for e in result.errors or ()] == ["no such item"]
    assert not [w for w in recwarn if "never awaited" in str(w.message)]
