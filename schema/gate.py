"""The one gate every GraphQL operation passes before it runs, on every channel.

HTTP POST, HTTP GET and both websocket protocols call ``Gate.admit`` for each operation,
so each is authenticated, rate-limited, shape-checked and validated the same way
(DESIGN.md, "Principals and access"). The order is what keeps refused work cheap:

1. the token (already verified, or refused, when the context was made);
2. the caller's rate limit — before anything that costs in proportion to the request;
3. the text's size, its tokens and how often one name recurs, counted by a regular
   expression (graphql-core's lexer costs microseconds a token), then parsing;
4. the shape: depth (``__`` fields count too), fields and aliases in all, and how often
   one response name is selected in one selection set — graphql-core's overlapping-fields
   rule compares those selections pairwise, so 660 copies of one field cost it seconds;
5. graphql-core's validation, with the alias and (in prod) introspection rules;
6. the operation: one that exists, of a type this channel runs;
7. a token for a mutation (every one needs one); the variables: no list longer than a
   batch may be, then coerced against their definitions; the submitted batch's size.

What parsing, the shape check and validation find is remembered by query text, so a
repeated text, good or bad, costs one dictionary lookup.
"""

import re
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import strawberry
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    parse,
    specified_rules,
    validate,
)
from graphql.execution.values import get_variable_values
from graphql.utilities import get_operation_ast
from graphql.validation import ASTValidationRule
from strawberry.schema.schema import MaybeNullValidationRule, OneOfInputValidationRule

from hub.errors import BadInput, HubError, Unauthenticated
from schema.context import Context
from schema.limits import (
    MAX_ALIASES,
    MAX_BATCH,
    MAX_DEPTH,
    MAX_FIELDS,
    MAX_NAME_USES,
    MAX_QUERY_CHARS,
    MAX_QUERY_TOKENS,
    MAX_REPEATS,
    batch_size,
    limit_rules,
)

CACHE_SIZE: Final = 1024
NEEDS_TOKEN: Final = "this operation needs a bearer token"
# GraphQL's lexical tokens, roughly as its lexer splits them (comments and commas are
# ignored there too): enough to count tokens and names without parsing.
_TOKEN: Final = re.compile(
    r'"""(?:[^"\\]|\\.|"(?!""))*"""|"(?:[^"\\\n]|\\.)*"|#[^\n]*|(?P<name>[_A-Za-z][_0-9A-Za-z]*)'
    r"|-?[0-9][0-9.eE+-]*|\.\.\.|[!$&():=@\[\]{|}]"
)
_NAME: Final = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")
ALL_OPERATIONS: Final = frozenset(OperationType)
HTTP_POST: Final = frozenset((OperationType.QUERY, OperationType.MUTATION))
HTTP_GET: Final = frozenset((OperationType.QUERY,))
SUBSCRIBE_OVER_WEBSOCKET: Final = (
    "subscriptions run over a websocket to /graphql (protocol graphql-transport-ws or"
    " graphql-ws), not over HTTP"
)


@dataclass(frozen=True)
class Admitted:
    """An operation that may run: its document (parsed and validated) and its variables."""

    document: DocumentNode
    operation: OperationType
    variables: dict[str, Any] | None


@dataclass(frozen=True)
class Refused:
    """Why an operation must not run. ``request_error`` marks a request that cannot run
    as sent (syntax, validation, variables, an operation this channel does not run): the
    GraphQL-over-HTTP spec answers those 400 under application/graphql-response+json."""

    errors: list[GraphQLError]
    request_error: bool
    wrong_method: bool = False


# Each error of an unknown field computes "did you mean" suggestions: a few are plenty.
MAX_VALIDATION_ERRORS: Final = 10


def validate_document(
    schema: GraphQLSchema, document: DocumentNode, rules: tuple[type[ASTValidationRule], ...]
) -> list[GraphQLError]:
    """graphql-core's validation with strawberry's own rules, stopping after a few errors."""
    every = (*rules, MaybeNullValidationRule, OneOfInputValidationRule)
    return validate(schema, document, every, max_errors=MAX_VALIDATION_ERRORS)


def refusal_of(error: HubError) -> GraphQLError:
    return GraphQLError(error.message, original_error=error, extensions={"code": error.code})


def _bad(message: str) -> Refused:
    return Refused([refusal_of(BadInput(message))], request_error=True)


class _Shape:
    """Depth and repeated response names of a document, fragments expanded once each."""

    def __init__(self, document: DocumentNode) -> None:
        self.document = document
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self._depths: dict[str, int] = {}
        self._names: dict[str, dict[str, int]] = {}
        self._open: set[str] = set()

    def check(self, selection_set: SelectionSetNode) -> str | None:
        """Why the selection set is too deep or repeats a field too often; None if fine."""
        try:
            depth = self._depth(selection_set)
        except _Repeated as exc:
            return str(exc)
        if depth > MAX_DEPTH:
            return f"the query's depth is {depth}; at most {MAX_DEPTH} levels"
        return None

    def count(self) -> str | None:
        """Why the document selects too many fields or aliases in all; None if fine."""
        fields = aliases = 0
        for node in _field_nodes(self.document):
            fields += 1
            aliases += node.alias is not None
        if fields > MAX_FIELDS:
            return f"the query selects {fields} fields; at most {MAX_FIELDS}"
        if aliases > MAX_ALIASES:
            return f"{aliases} aliases found. Allowed: {MAX_ALIASES}"
        return None

    def _depth(self, selection_set: SelectionSetNode) -> int:
        counts: dict[str, int] = {}
        self._count(selection_set, counts)
        deepest = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                below = (
                    0 if selection.selection_set is None else self._depth(selection.selection_set)
                )
                deepest = max(deepest, 1 + below)
            elif isinstance(selection, InlineFragmentNode):
                deepest = max(deepest, self._depth(selection.selection_set))
            elif isinstance(selection, FragmentSpreadNode):
                deepest = max(deepest, self._fragment_depth(selection.name.value))
        return deepest

    def _fragment_depth(self, name: str) -> int:
        found = self._depths.get(name)
        if found is not None:
            return found
        fragment = self.fragments.get(name)
        if fragment is None or name in self._open:
            return 0  # unknown or cyclic: validation refuses it
        self._open.add(name)
        try:
            depth = self._depth(fragment.selection_set)
        finally:
            self._open.discard(name)
        self._depths[name] = depth
        return depth

    def _count(self, selection_set: SelectionSetNode, counts: dict[str, int]) -> None:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                name = (selection.alias or selection.name).value
                counts[name] = counts.get(name, 0) + 1
                if counts[name] > MAX_REPEATS:
                    raise _Repeated(name)
            elif isinstance(selection, InlineFragmentNode):
                self._count(selection.selection_set, counts)
            elif isinstance(selection, FragmentSpreadNode):
                for name, n in self._fragment_names(selection.name.value).items():
                    counts[name] = counts.get(name, 0) + n
                    if counts[name] > MAX_REPEATS:
                        raise _Repeated(name)

    def _fragment_names(self, name: str) -> Mapping[str, int]:
        found = self._names.get(name)
        if found is not None:
            return found
        fragment = self.fragments.get(name)
        if fragment is None or name in self._open:
            return {}
        self._open.add(name)
        counts: dict[str, int] = {}
        try:
            self._count(fragment.selection_set, counts)
        finally:
            self._open.discard(name)
        self._names[name] = counts
        return counts


class _Repeated(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"field '{name}' is selected more than {MAX_REPEATS} times in one selection set"
        )


def _field_nodes(document: DocumentNode) -> list[FieldNode]:
    found: list[FieldNode] = []
    pending = [d.selection_set for d in document.definitions if hasattr(d, "selection_set")]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                found.append(selection)
            if getattr(selection, "selection_set", None) is not None:
                pending.append(selection.selection_set)  # type: ignore[attr-defined]
    return found


def lexical_problem(query: str) -> str | None:
    """Why the text has too many tokens, or uses one name too often; None when it does not.

    A regular expression counts them in C, well before graphql-core's lexer would."""
    tokens = 0
    names: Counter[str] = Counter()
    for match in _TOKEN.finditer(query):
        if match.group(0).startswith("#"):
            continue
        tokens += 1
        if match["name"] is not None:
            names[match["name"]] += 1
    if tokens > MAX_QUERY_TOKENS:
        return f"the query has more than {MAX_QUERY_TOKENS} tokens"
    if names:
        name, uses = names.most_common(1)[0]
        if uses > MAX_NAME_USES:
            return f"'{name}' appears {uses} times in the query; at most {MAX_NAME_USES}"
    return None


def shape_problem(document: DocumentNode) -> str | None:
    """Why the document is too deep or too large, or repeats a field too often."""
    shape = _Shape(document)
    problem = shape.count()
    if problem is not None:
        return problem
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode | FragmentDefinitionNode):
            problem = shape.check(definition.selection_set)
            if problem is not None:
                return problem
    return None


@dataclass(frozen=True)
class _Checked:
    document: DocumentNode | None
    errors: list[GraphQLError]


class Gate:
    """Admits or refuses operations; one per schema mode (its caches are per process)."""

    def __init__(self, schema: strawberry.Schema, prod: bool, size: int = CACHE_SIZE) -> None:
        self._schema = schema._schema
        self._rules = (*specified_rules, *limit_rules(prod))
        self._size = size
        self._checked: OrderedDict[str, _Checked] = OrderedDict()

    def admit(
        self,
        ctx: Context,
        query: object,
        variables: object,
        operation_name: object,
        allowed: Iterable[OperationType] = ALL_OPERATIONS,
    ) -> Admitted | Refused:
        try:  # a bad token is still a request of its client, and counts as one
            ctx.guards.requests.check(ctx.rate_key)
        except HubError as exc:
            return Refused([refusal_of(exc)], request_error=False)
        if ctx.auth_error is not None:
            return Refused([refusal_of(ctx.auth_error)], request_error=False)
        if not isinstance(query, str) or not query.strip():
            return _bad('send the operation text as a string in "query"')
        if not (variables is None or isinstance(variables, dict)):
            return _bad('"variables" must be a JSON object')
        if not (operation_name is None or isinstance(operation_name, str)):
            return _bad('"operationName" must be a string')
        if len(query) > MAX_QUERY_CHARS:
            return _bad(f"query: at most {MAX_QUERY_CHARS} characters")
        checked = self._check(query)
        if checked.document is None:
            return Refused(checked.errors, request_error=True)
        operation = get_operation_ast(checked.document, operation_name)
        if operation is None:
            if operation_name:  # quoted only when it is a name, never an arbitrary value
                if _NAME.fullmatch(operation_name):
                    return _bad(f"no operation named '{operation_name}' in the query")
                return _bad("operationName names no operation in the query")
            return _bad("the query holds several operations: name one in operationName")
        kinds = frozenset(allowed)
        if operation.operation not in kinds:
            if operation.operation == OperationType.SUBSCRIPTION:
                return _bad(SUBSCRIBE_OVER_WEBSOCKET)
            wrong = operation.operation == OperationType.MUTATION and kinds == HTTP_GET
            message = (
                "mutations are sent by POST, never by GET"
                if wrong
                else f"{operation.operation.value}s are not run here"
            )
            return Refused([refusal_of(BadInput(message))], request_error=True, wrong_method=wrong)
        if operation.operation == OperationType.MUTATION and ctx.principal is None:
            # Every mutation needs a token: refused before its variables (a batch) cost.
            return Refused([refusal_of(Unauthenticated(NEEDS_TOKEN))], request_error=False)
        for name, value in (variables or {}).items():
            if isinstance(value, list) and len(value) > MAX_BATCH:
                return _bad(f"variable '${name}': at most {MAX_BATCH} items")
        coerced = get_variable_values(
            self._schema, operation.variable_definitions or (), variables or {}, max_errors=10
        )
        if isinstance(coerced, list):
            return Refused(coerced, request_error=True)
        if batch_size(checked.document, variables) > MAX_BATCH:
            return Refused(
                [refusal_of(BadInput(f"documents: at most {MAX_BATCH} documents per request"))],
                request_error=False,
            )
        return Admitted(checked.document, operation.operation, variables)

    def _check(self, query: str) -> _Checked:
        found = self._checked.get(query)
        if found is not None:
            self._checked.move_to_end(query)
            return found
        found = self._parse_and_validate(query)
        self._checked[query] = found
        if len(self._checked) > self._size:
            self._checked.popitem(last=False)
        return found

    def _parse_and_validate(self, query: str) -> _Checked:
        lexical = lexical_problem(query)
        if lexical is not None:
            return _Checked(None, [refusal_of(BadInput(lexical))])
        try:
            document = parse(query, max_tokens=MAX_QUERY_TOKENS)
        except GraphQLError as error:
            return _Checked(None, [error])
        problem = shape_problem(document)
        if problem is not None:
            return _Checked(None, [refusal_of(BadInput(problem))])
        errors = validate_document(self._schema, document, self._rules)
        return _Checked(None if errors else document, list(errors))
