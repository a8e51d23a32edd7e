"""Request limits and error shaping.

The validation rules are built once, here, at import: strawberry's validation cache is
keyed by the rule classes, so rules built per request (as the stock limiter extensions
do) would make every request miss it. Depth and repeated fields are checked before
validation, by ``schema.gate``.
"""

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    ListValueNode,
    OperationDefinitionNode,
    VariableNode,
)
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as alias_validator
from strawberry.types import ExecutionResult
from strawberry.types.execution import StreamExecutionResult

from hub.errors import HubError, RateLimited, Unavailable
from schema.messages import without_suggestions, without_values

MAX_DEPTH: Final = 10
MAX_ALIASES: Final = 30
# Batches travel as variables, which are not tokens; a query text is small (the full
# introspection query is ~160 tokens). graphql-core's lexer costs microseconds a token, so
# the cap bounds what parsing a refused text can cost.
MAX_QUERY_TOKENS: Final = 1000
MAX_QUERY_CHARS: Final = 64 * 1024
# How often one response name may be selected in one selection set (fragments included).
MAX_REPEATS: Final = 10
# How often one name may appear in a whole text, and how many fields it may select.
MAX_NAME_USES: Final = 100
MAX_FIELDS: Final = 200
MAX_PAGE: Final = 100
DEFAULT_PAGE: Final = 20
MAX_BATCH: Final = 500
MAX_REQUEST_BYTES: Final = 2 * 1024 * 1024
MAX_ACCESS_EVENTS: Final = 500

ALIAS_RULE: Final = alias_validator(MAX_ALIASES)
DEV_RULES: Final = (ALIAS_RULE,)
PROD_RULES: Final = (*DEV_RULES, NoSchemaIntrospectionCustomRule)


def limit_rules(prod: bool) -> tuple[Any, ...]:
    return PROD_RULES if prod else DEV_RULES


class _Limits(SchemaExtension):
    rules: tuple[Any, ...] = DEV_RULES

    def on_operation(self) -> Iterator[None]:
        ec = self.execution_context
        ec.validation_rules = ec.validation_rules + self.rules
        ec.parse_options["max_tokens"] = MAX_QUERY_TOKENS
        yield


class DevLimits(_Limits):
    rules = DEV_RULES


class ProdLimits(_Limits):
    rules = PROD_RULES


def batch_size(document: DocumentNode, variables: dict[str, Any] | None) -> int:
    """How many documents the operation's ``submitDocuments`` fields carry in all."""
    total = 0
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        for selection in definition.selection_set.selections:
            if not isinstance(selection, FieldNode) or selection.name.value != "submitDocuments":
                continue
            for arg in selection.arguments or ():
                if arg.name.value != "documents":
                    continue
                value = arg.value
                if isinstance(value, ListValueNode):
                    total += len(value.values)
                elif isinstance(value, VariableNode):
                    given = (variables or {}).get(value.name.value)
                    total += len(given) if isinstance(given, list) else 1
                else:
                    total += 1
    return total


def is_unexpected(error: GraphQLError) -> bool:
    """An exception from a resolver that is not one of the hub's own answers."""
    original = error.original_error
    return original is not None and error.path is not None and not isinstance(original, HubError)


def shape_error(error: GraphQLError, prod: bool = False) -> GraphQLError:
    """Every error carries extensions.code; unexpected exceptions are masked; a refused
    request's message never quotes an input value, and in prod suggests no schema names."""
    original = error.original_error
    extensions: dict[str, Any]
    if isinstance(original, HubError):
        extensions = {"code": original.code}
        message = original.message
        if isinstance(original, RateLimited | Unavailable) and original.retry_after is not None:
            extensions["retryAfter"] = original.retry_after
    elif error.extensions and "code" in error.extensions:
        return error
    elif is_unexpected(error):
        extensions, message = {"code": "INTERNAL"}, "internal error"
    else:
        # Parse, validation and variable errors describe the request, not the server.
        message = without_values(error.message)
        extensions = {"code": "BAD_INPUT"}
        if prod:
            message = without_suggestions(message)
    return GraphQLError(
        message,
        nodes=error.nodes,
        positions=error.positions,
        path=error.path,
        source=error.source,
        extensions=extensions,
    )


def retry_after(errors: Iterable[object]) -> int | None:
    """The Retry-After (seconds) of an answer with these formatted errors: the longest
    wait among its RATE_LIMITED and UNAVAILABLE ones; None when there is none."""
    waits = [
        wait
        for error in errors
        if isinstance(error, Mapping)
        and isinstance(extensions := error.get("extensions"), Mapping)
        and isinstance(wait := extensions.get("retryAfter"), int)
    ]
    return max(waits) if waits else None


def http_status(errors: Iterable[object]) -> int:
    """503 for an answer with an UNAVAILABLE error (the database is down: retry later),
    else 200."""
    for error in errors:
        if isinstance(error, Mapping):
            extensions = error.get("extensions")
            if isinstance(extensions, Mapping) and extensions.get("code") == Unavailable.code:
                return 503
    return 200


class ErrorCodes(SchemaExtension):
    """Shapes the errors of strawberry's view (HTTP) and of every websocket message."""

    prod = False

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = [shape_error(e, self.prod) for e in result.errors]

    def on_stream_result(self, result: StreamExecutionResult) -> Iterator[None]:
        # Websocket results are sent while the operation is still open, before
        # on_operation's second half runs: they are shaped here, before they are sent.
        if isinstance(result, ExecutionResult) and result.errors:
            result.errors = [shape_error(e, self.prod) for e in result.errors]
        yield


class ProdErrorCodes(ErrorCodes):
    prod = True
