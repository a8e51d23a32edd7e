"""POST /graphql with a JSON body: the API's hot path, run on graphql-core directly.

Strawberry's view and extension runner cost more per request (~250 µs) than a proof
lookup itself. Here an operation's text is parsed and validated once (with the same limit
rules, ``schema.limits``) and then executed by graphql-core through the strawberry schema,
so resolvers, types and errors are the same. Anything else — GET, GraphiQL, websockets,
multipart, batched bodies, subscriptions, bodies strawberry must refuse — goes on to
strawberry's view (``schema.app.HubGraphQL``), which answers it, refusals included, as a
GraphQL response with extensions.code.
"""

import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, cast

import orjson
import strawberry
from graphql import (
    DocumentNode,
    GraphQLError,
    OperationType,
    execute,
    parse,
    specified_rules,
)
from graphql.utilities import get_operation_ast
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.execution.is_awaitable import optimized_is_awaitable
from strawberry.schema.schema import validate_document

from hub.metrics import PARSED_REQUEST_KEY
from hub.services import Hub
from schema.context import Context
from schema.limits import (
    MAX_TOKENS,
    guard_refusal,
    http_status,
    limit_rules,
    refused,
    retry_after,
    shape_error,
)

PLAN_CACHE_SIZE: Final = 1024
_JSON_HEADERS: Final = [(b"content-type", b"application/json")]

ContextFactory = Callable[[Hub, str | None, str], Awaitable[Context]]


@dataclass(frozen=True)
class Plan:
    """A parsed and validated operation text: the document, or why it cannot run."""

    document: DocumentNode | None
    errors: list[GraphQLError]


class Plans:
    """Parsed and validated operation texts, least recently used dropped first."""

    def __init__(self, schema: strawberry.Schema, prod: bool, size: int = PLAN_CACHE_SIZE):
        self._schema = schema._schema
        self._rules = (*specified_rules, *limit_rules(prod))
        self._size = size
        self._plans: OrderedDict[str, Plan] = OrderedDict()

    def get(self, query: str) -> Plan:
        plan = self._plans.get(query)
        if plan is not None:
            self._plans.move_to_end(query)
            return plan
        try:
            document = parse(query, max_tokens=MAX_TOKENS)
        except GraphQLError as error:
            plan = Plan(None, [error])
        else:
            errors = validate_document(self._schema, document, self._rules)
            plan = Plan(None if errors else document, errors)
        self._plans[query] = plan
        if len(self._plans) > self._size:
            self._plans.popitem(last=False)
        return plan


@dataclass(frozen=True)
class Request:
    """The parts of a JSON GraphQL request body this path runs."""

    query: str
    variables: dict[str, Any] | None
    operation_name: str | None

    @classmethod
    def from_body(cls, body: bytes) -> "Request | None":
        """None when the body is not a single well-formed request (strawberry answers it).

        orjson refuses a little that the json module takes (lone surrogate escapes, NaN,
        integers beyond 64 bits): such a body goes to strawberry, which answers as ever.
        """
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, dict):
            return None
        query, variables, name = data.get("query"), data.get("variables"), data.get("operationName")
        if not isinstance(query, str) or not query:
            return None
        if not (variables is None or isinstance(variables, dict)):
            return None
        if not (name is None or isinstance(name, str)):
            return None
        return cls(query, variables, name)


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers") or ():
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"application/json"
    return False


class GraphQLPost:
    """Runs JSON POSTs itself and hands every other request to ``view``."""

    def __init__(
        self, schema: strawberry.Schema, view: ASGIApp, prod: bool, context: ContextFactory
    ) -> None:
        self.schema = schema
        self.view = view
        self.plans = Plans(schema, prod)
        self.prod = prod
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not _is_json(scope):
            await self.view(scope, receive, send)
            return
        body, receive = await _buffered(receive)
        request = Request.from_body(body)
        plan = None if request is None else self.plans.get(request.query)
        if request is None or plan is None or self._is_subscription(plan, request):
            await self.view(scope, receive, send)
            return
        scope[PARSED_REQUEST_KEY] = (request.query, request.operation_name)
        data, errors = await self._run(scope, plan, request)
        payload: dict[str, Any] = {"data": data}
        wait, status = None, 200
        if errors:
            payload["errors"] = formatted = [shape_error(e, self.prod).formatted for e in errors]
            wait, status = retry_after(formatted), http_status(formatted)
        try:
            encoded = orjson.dumps(payload)
        except TypeError:  # an integer beyond 64 bits, say: the json module writes it
            encoded = json.dumps(payload, separators=(",", ":")).encode()
        headers = [*_JSON_HEADERS, (b"content-length", str(len(encoded)).encode())]
        if wait is not None:  # RATE_LIMITED, UNAVAILABLE: when to come back
            headers.append((b"retry-after", str(wait).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": encoded})

    @staticmethod
    def _is_subscription(plan: Plan, request: Request) -> bool:
        if plan.document is None:
            return False
        operation = get_operation_ast(plan.document, request.operation_name)
        return operation is not None and operation.operation == OperationType.SUBSCRIPTION

    async def _run(
        self, scope: Scope, plan: Plan, request: Request
    ) -> tuple[Any, list[GraphQLError] | None]:
        if plan.document is None:
            return None, plan.errors
        hub: Hub = scope["app"].state.hub
        client = scope.get("client")
        ctx = await self.context(
            hub, _header(scope, b"authorization"), client[0] if client else "unknown"
        )
        refusal = guard_refusal(ctx, plan.document, request.variables)
        if refusal is not None:
            return None, refused(refusal).errors
        result = execute(
            self.schema._schema,
            plan.document,
            context_value=ctx,
            variable_values=request.variables,
            operation_name=request.operation_name,
            executor_class=self.schema.execution_context_class,
            is_awaitable=cast(Any, optimized_is_awaitable),
        )
        if isinstance(result, Awaitable):
            result = await result
        # Only once the whole operation is done (a cancelled one may leave resolvers
        # running on this context; the collector takes that one).
        ctx.release()
        if result.errors:
            self.schema.process_errors(result.errors)  # logs the unexpected ones, as the view
        return result.data, result.errors


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The whole request body, and a receive that replays it for the view."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    return body, replaying(body, receive)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that gives ``body`` as the whole request, then defers to ``receive``."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
