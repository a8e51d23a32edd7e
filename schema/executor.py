"""The execution context: top-level fields awaited in turn, plain leaves completed in one step.

graphql-core runs a query's asynchronous top-level fields concurrently, each in its own
task (``asyncio.gather``); two tasks cost ~100 µs, as much as a proof lookup. The hub's
reads on SQLite never suspend, and on PostgreSQL a query rarely has more than one or two
top-level fields, so awaiting them in turn gives the same answer for less. Fields below
the top level keep graphql-core's behaviour, so DataLoaders still batch a page's loads.

A plain scalar field (``schema.resolvers``) is completed without the Info object and the
generic completion graphql-core spends on every field: a proof's ~20 hashes and a page's
hundreds of scalars are most of an answer.
"""

from collections.abc import Awaitable
from typing import Any

from graphql import GraphQLObjectType
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from schema.resolvers import GENERIC, plain_leaf


class HubExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Path,
        position_context: Any,
    ) -> Any:
        node = field_details_list[0].node
        field = parent_type.fields.get(node.name.value)
        if field is not None and not node.arguments:
            complete = plain_leaf(field)
            if complete is not None:
                try:
                    value = complete(source)
                except Exception:
                    value = GENERIC
                if value is not GENERIC:
                    return value
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        if path is not None:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        results: dict[str, Any] = {}
        pending: list[str] = []
        try:
            for response_name, field_details_list in grouped_field_set.items():
                result = self.execute_field(
                    parent_type,
                    source_value,
                    field_details_list,
                    Path(None, response_name, parent_type.name),
                    position_context,
                )
                if result is Undefined:
                    continue
                results[response_name] = result
                if self.is_awaitable(result):
                    pending.append(response_name)
        except Exception:
            _close([results[name] for name in pending])
            raise
        if not pending:
            return results
        return _settle(results, pending)


async def _settle(results: dict[str, Any], pending: list[str]) -> dict[str, Any]:
    for i, name in enumerate(pending):
        try:
            results[name] = await results[name]
        except BaseException:
            _close([results[later] for later in pending[i + 1 :]])
            raise
    return results


def _close(awaitables: list[Awaitable[Any]]) -> None:
    """Drop results that will not be awaited (a top-level field failed), quietly."""
    for awaitable in awaitables:
        close = getattr(awaitable, "close", None)
        if close is not None:
            close()
