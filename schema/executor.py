"""The execution context: top-level fields run in turn, plain leaves completed in one step.

graphql-core runs a query's asynchronous top-level fields concurrently, each in its own
task (``asyncio.gather``); two tasks cost ~100 µs, as much as a proof lookup. The hub's
reads on SQLite never suspend, and on PostgreSQL a query rarely has more than one or two
top-level fields, so running them one after another gives the same answer for less.
Fields below the top level keep graphql-core's behaviour, so DataLoaders still batch a
page's loads.

A plain scalar field (``schema.resolvers``) is completed without the Info object and the
generic completion graphql-core spends on every field: a proof's ~20 hashes and a page's
hundreds of scalars are most of an answer. An object whose selected fields are all plain
(a submit result, a page's edge) is completed as one dict, its plan made once per request.
"""

import logging
from typing import Any

from graphql import GraphQLObjectType, GraphQLOutputType
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from hub.errors import HubError
from hub.outages import outage
from schema.resolvers import GENERIC, Complete, plain_leaf

log = logging.getLogger(__name__)

FieldPlan = list[tuple[str, Complete]]


def _object_plan(parent_type: GraphQLObjectType, grouped_field_set: Any) -> FieldPlan | None:
    plan: FieldPlan = []
    for response_name, field_details_list in grouped_field_set.items():
        node = field_details_list[0].node
        field = parent_type.fields.get(node.name.value)
        if field is None or any(details.node.arguments for details in field_details_list):
            return None
        complete = plain_leaf(field)
        if complete is None:
            return None
        plan.append((response_name, complete))
    return plan


class HubExecutionContext(StrawberryGraphQLCoreExecutionContext):
    _hub_plans: dict[tuple[str, int], tuple[Any, FieldPlan | None]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        executions = getattr(self.context_value, "executions", None)
        if executions is not None:  # Context.release() breaks this one's cycle
            executions.append(self)

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

    def handle_field_error(
        self,
        raw_error: Exception,
        return_type: GraphQLOutputType,
        field_details_list: Any,
        path: Path,
    ) -> None:
        # A database that is down or full answers UNAVAILABLE (a HubError), not INTERNAL:
        # the client may retry; the log names the fault, never the query or its values.
        if not isinstance(raw_error, HubError):
            found = outage(raw_error)
            if found is not None:
                log.warning("database unavailable: %s", found.cause)
                raw_error = found
        super().handle_field_error(raw_error, return_type, field_details_list, path)

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        # The spec lets a query's top-level fields run serially, as a mutation's must; a
        # later field then never starts when an earlier one failed the whole operation.
        if path is None:
            return self.execute_fields_serially(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        plan = self._plan_of(parent_type, grouped_field_set)
        if plan is not None:
            results: dict[str, Any] = {}
            for response_name, complete in plan:
                try:
                    value = complete(source_value)
                except Exception:
                    value = GENERIC
                if value is GENERIC:
                    break
                results[response_name] = value
            else:
                return results
        return super().execute_fields(
            parent_type, source_value, path, grouped_field_set, position_context
        )

    def _plan_of(self, parent_type: GraphQLObjectType, grouped_field_set: Any) -> FieldPlan | None:
        # graphql-core memoizes a field's subfields per request, so every item of a list
        # brings the same grouped_field_set; it stays in the value to keep its id unique.
        try:
            plans = self._hub_plans
        except AttributeError:
            plans = self._hub_plans = {}
        key = (parent_type.name, id(grouped_field_set))
        found = plans.get(key)
        if found is None:
            found = plans[key] = (grouped_field_set, _object_plan(parent_type, grouped_field_set))
        return found[1]
