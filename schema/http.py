"""GraphQL over HTTP (POST and GET /graphql), run on graphql-core directly.

Strawberry's view and extension runner cost more per request (~250 µs) than a proof
lookup itself. Here each request passes the gate (``schema.gate``: token, rate limit,
shape, validation, variables) and is then executed by graphql-core through the
strawberry schema, so resolvers, types and errors are the same as on the websocket.

The answer follows the GraphQL-over-HTTP spec: ``application/graphql-response+json``
when the client accepts it, with 4xx for a request that cannot run (and no ``data``);
``application/json`` otherwise (also for ``*/*`` or no Accept), where such errors are
answered 200. Queries run by GET; a mutation by GET is 405. A subscription is refused
with a pointer to the websocket. GraphiQL, websockets and other methods go on to
strawberry's view (``schema.app.HubGraphQL``), which runs no operation over HTTP itself.
"""

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, cast
from urllib.parse import parse_qsl

import orjson
import strawberry
from graphql import GraphQLError, execute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.execution.is_awaitable import optimized_is_awaitable

from hub.errors import BadInput
from hub.metrics import PARSED_REQUEST_KEY
from hub.services import Hub
from schema.context import Context
from schema.gate import HTTP_GET, HTTP_POST, Admitted, Gate, Refused
from schema.limits import http_status, retry_after, shape_error

JSON: Final = "application/json"
GRAPHQL_RESPONSE: Final = "application/graphql-response+json"
# Answers carry personal data (bodies, salts, who read what): no cache may keep them.
NO_STORE: Final = (b"cache-control", b"no-store")

ContextFactory = Callable[[Hub, str | None, str], Awaitable[Context]]
# Status codes of refusals under application/graphql-response+json, by error code.
_REFUSAL_STATUS: Final = {"UNAUTHENTICATED": 401, "FORBIDDEN": 403, "RATE_LIMITED": 429}


class BadRequest(BadInput):
    """A request that is not a GraphQL request at all: answered with ``status``."""

    def __init__(self, message: str, status: int = 400, allow: str | None = None) -> None:
        super().__init__(message)
        self.status, self.allow = status, allow


@dataclass(frozen=True)
class Request:
    """The parts of a GraphQL request this path runs (unchecked: the gate checks them)."""

    query: str
    variables: dict[str, Any] | None
    operation_name: str | None

    @classmethod
    def of(cls, query: object, variables: object, name: object, extensions: object) -> "Request":
        """The request, or BadRequest (400 whatever the Accept) for a parameter of the
        wrong type: such a body is not a GraphQL request at all."""
        if not isinstance(query, str) or not query.strip():
            raise BadRequest('send the operation text as a string in "query"')
        if not (variables is None or isinstance(variables, dict)):
            raise BadRequest('"variables" must be a JSON object')
        if not (name is None or isinstance(name, str)):
            raise BadRequest('"operationName" must be a string')
        if not (extensions is None or isinstance(extensions, dict)):
            raise BadRequest('"extensions" must be a JSON object')
        return cls(query, variables, name)

    @classmethod
    def from_body(cls, body: bytes) -> "Request":
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            # orjson refuses a little that JSON allows (integers beyond 64 bits, say).
            try:
                data = json.loads(body)
            except RecursionError:
                raise BadRequest("the JSON is nested too deeply") from None
            except ValueError:
                raise BadRequest("the request body is not valid JSON") from None
        if isinstance(data, list):
            raise BadRequest("send one operation per request; batches are not accepted")
        if not isinstance(data, dict):
            raise BadRequest('expected a JSON object, as in {"query": "..."}')
        return cls.of(
            data.get("query"),
            data.get("variables"),
            data.get("operationName"),
            data.get("extensions"),
        )

    @classmethod
    def from_query_string(cls, raw: bytes) -> "Request":
        params = dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))

        def decoded(name: str) -> object:
            text = params.get(name) or None
            try:
                return None if text is None else json.loads(text)
            except (ValueError, RecursionError):
                raise BadRequest(f"{name}: not valid JSON") from None

        return cls.of(
            params.get("query"),
            decoded("variables"),
            params.get("operationName") or None,
            decoded("extensions"),
        )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return str(value.decode("latin-1"))
    return None


def media_type(scope: Scope) -> str:
    """The answer's media type from the Accept header (q-values honoured; a tie goes to
    application/graphql-response+json); application/json when nothing better is named."""
    accept = _header(scope, b"accept")
    best, best_q = JSON, 0.0
    for part in (accept or "").split(","):
        name, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        name = name.lower()
        if name == GRAPHQL_RESPONSE and q > 0 and q >= best_q:
            best, best_q = GRAPHQL_RESPONSE, q
        elif name in (JSON, "*/*", "application/*") and q > best_q:
            best, best_q = JSON, q
    return best


def _is_json(scope: Scope) -> bool:
    content_type = _header(scope, b"content-type")
    return content_type is not None and content_type.split(";", 1)[0].strip().lower() == JSON


class GraphQLHTTP:
    """Runs GraphQL requests over HTTP itself and hands the rest to ``view``."""

    def __init__(
        self,
        schema: strawberry.Schema,
        view: ASGIApp,
        gate: Gate,
        prod: bool,
        context: ContextFactory,
    ) -> None:
        self.schema = schema
        self.view = view
        self.gate = gate
        self.prod = prod
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method")
        if scope["type"] != "http" or method not in ("GET", "POST"):
            await self.view(scope, receive, send)
            return
        query_string: bytes = scope.get("query_string", b"")
        if method == "GET" and not any(
            k == "query" for k, _ in parse_qsl(query_string.decode("latin-1"))
        ):
            await self.view(scope, receive, send)  # GraphiQL, or strawberry's refusal
            return
        kind = media_type(scope)
        try:
            if method == "GET":
                request = Request.from_query_string(query_string)
            else:
                if not _is_json(scope):
                    raise BadRequest(
                        "send the request as JSON, with Content-Type: application/json", 415
                    )
                body, _ = await _buffered(receive)
                request = Request.from_body(body)
        except BadRequest as exc:
            scope[PARSED_REQUEST_KEY] = ("", None)
            await _refuse(send, kind, exc.message, exc.status, exc.allow)
            return
        await self._answer(scope, send, request, HTTP_GET if method == "GET" else HTTP_POST, kind)

    async def _answer(
        self, scope: Scope, send: Send, request: Request, allowed: frozenset[Any], kind: str
    ) -> None:
        hub: Hub = scope["app"].state.hub
        client = scope.get("client")
        ctx = await self.context(
            hub, _header(scope, b"authorization"), client[0] if client else "unknown"
        )
        verdict = self.gate.admit(
            ctx, request.query, request.variables, request.operation_name, allowed
        )
        status, headers = 200, []
        if isinstance(verdict, Refused):
            scope[PARSED_REQUEST_KEY] = ("", None)
            errors = [shape_error(e, self.prod).formatted for e in verdict.errors]
            payload: dict[str, Any] = {"errors": errors}
            if verdict.wrong_method:
                status = 405
                headers.append((b"allow", b"POST"))
            elif kind == GRAPHQL_RESPONSE:
                code = errors[0].get("extensions", {}).get("code")
                status = 400 if verdict.request_error else _REFUSAL_STATUS.get(str(code), 400)
            if kind == JSON:
                payload = {"data": None, "errors": errors}
        else:
            scope[PARSED_REQUEST_KEY] = (request.query, request.operation_name)
            data, raw = await self._run(ctx, verdict, request.operation_name)
            payload = {"data": data}
            errors = [shape_error(e, self.prod).formatted for e in raw or ()]
            if errors:
                payload["errors"] = errors
        wait = retry_after(errors) if errors else None
        if wait is not None:  # RATE_LIMITED, UNAVAILABLE: when to come back
            headers.append((b"retry-after", str(wait).encode()))
        if errors and http_status(errors) == 503:  # the database is down: say so to any client
            status = 503
        await _send_json(send, status, kind, payload, headers)

    async def _run(
        self, ctx: Context, admitted: Admitted, operation_name: str | None
    ) -> tuple[Any, list[GraphQLError] | None]:
        result = execute(
            self.schema._schema,
            admitted.document,
            context_value=ctx,
            variable_values=admitted.variables,
            operation_name=operation_name,
            executor_class=self.schema.execution_context_class,
            is_awaitable=cast(Any, optimized_is_awaitable),
        )
        if isinstance(result, Awaitable):
            result = await result
        # Only once the whole operation is done (a cancelled one may leave resolvers
        # running on this context; the collector takes that one).
        ctx.release()
        if result.errors:
            self.schema.process_errors(result.errors)  # logs the unexpected ones
        return result.data, result.errors


async def _send_json(
    send: Send, status: int, kind: str, payload: Any, extra: list[tuple[bytes, bytes]]
) -> None:
    try:
        encoded = orjson.dumps(payload)
    except TypeError:  # an integer beyond 64 bits, say: the json module writes it
        encoded = json.dumps(payload, separators=(",", ":")).encode()
    headers = [
        (b"content-type", f"{kind}; charset=utf-8".encode()),
        (b"content-length", str(len(encoded)).encode()),
        NO_STORE,
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": encoded})


async def _refuse(send: Send, kind: str, message: str, status: int, allow: str | None) -> None:
    error = {"message": message, "extensions": {"code": "BAD_INPUT"}}
    payload: dict[str, Any] = {"errors": [error]}
    if kind == JSON:
        payload = {"data": None, **payload}
    extra = [(b"allow", allow.encode())] if allow else []
    await _send_json(send, status, kind, payload, extra)


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The whole request body, and a receive that replays it."""
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
