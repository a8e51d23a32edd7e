"""The GraphQL endpoint: schema, HTTP/websocket view, authentication and body limit."""

import contextlib
import json
import logging
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

import strawberry
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData, process_result
from strawberry.http.parse_content_type import parse_content_type
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from hub.access.ratelimit import GuessLimiter, request_limiter
from hub.auth.jwks import JwksCache
from hub.auth.principal import Principal
from hub.auth.tokens import (
    TokenSettings,
    TokenVerifier,
    kid_for,
    load_or_create_jwt_key,
)
from hub.errors import Unauthenticated
from hub.services import Hub
from schema.context import Context, Guards
from schema.executor import HubExecutionContext
from schema.gate import Gate
from schema.http import NO_STORE, GraphQLHTTP, replaying
from schema.limits import (
    MAX_REQUEST_BYTES,
    DevLimits,
    ErrorCodes,
    ProdErrorCodes,
    ProdLimits,
    http_status,
    is_unexpected,
    retry_after,
    shape_error,
)
from schema.mutations import Mutation
from schema.queries import Query
from schema.resolvers import use_attribute_resolvers
from schema.subscriptions import Subscription
from schema.token_cache import VerifiedTokens
from schema.websocket import (
    MAX_OPERATIONS_PER_CONNECTION,
    Connections,
    GraphQLWSHandler,
    TransportWSHandler,
    bounded_messages,
    connection_authorization,
    refuse_connection,
)

log = logging.getLogger(__name__)
CACHE_SIZE = 1024
_GUARDS, _VERIFIER, _TOKENS = "graphql.guards", "graphql.verifier", "graphql.tokens"


class _ParserCache(ParserCache):
    """The parse cache, leaving a syntax error for strawberry to report.

    ParserCache parses in its hook, outside strawberry's handling of parse errors. Over
    HTTP a catch-all still turns the raise into an error, but the websocket handlers do not
    catch it: the client got a bare "complete" and the log a traceback. With the document
    left unset, strawberry parses again in its own handling and answers with the error;
    only texts that do not parse pay for that second parse.
    """

    def on_parse(self) -> Iterator[None]:
        ec = self.execution_context
        with contextlib.suppress(GraphQLError):
            ec.graphql_document = self.cached_parse_document(ec.query, **ec.parse_options)
        yield


def _parser_cache() -> ParserCache:
    return _ParserCache(maxsize=CACHE_SIZE)


def _validation_cache() -> ValidationCache:
    return ValidationCache(maxsize=CACHE_SIZE)


class HubSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Refusals (HubError, bad tokens, bad requests) are answers, not server faults:
        # only unexpected exceptions are logged, with their traceback.
        for error in errors:
            if is_unexpected(error):
                log.error("unexpected error at %s", error.path, exc_info=error.original_error)


@cache
def build_schema(prod: bool = False) -> strawberry.Schema:
    """The schema, built once per mode; prod has introspection off."""
    schema = HubSchema(
        query=Query,
        execution_context_class=HubExecutionContext,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            # First, so it shapes the errors of every later extension.
            ProdErrorCodes if prod else ErrorCodes,
            ProdLimits if prod else DevLimits,
            _parser_cache,
            _validation_cache,
        ],
    )
    use_attribute_resolvers(schema)
    return schema


def default_guards(rate_limit: float) -> Guards:
    """Per principal (per client address without a token), HUB_RATE_LIMIT requests/s."""
    return Guards(request_limiter(rate_limit), GuessLimiter())


def token_verifier(hub: Hub) -> TokenVerifier:
    """The hub's verifier: its own Ed25519 token key, and the IdP's JWKS when configured."""
    found = hub.extras.get(_VERIFIER)
    if isinstance(found, TokenVerifier):
        return found
    s = hub.settings
    public = load_or_create_jwt_key(s.jwt_key_path).public_key()
    jwks = JwksCache(s.jwks_url) if s.jwks_url else None
    verifier = TokenVerifier(
        TokenSettings(issuer=s.jwt_issuer, audience=s.jwt_audience), {kid_for(public): public}, jwks
    )
    hub.extras[_VERIFIER] = verifier
    return verifier


def verified_tokens(hub: Hub) -> VerifiedTokens:
    """The cache of recently verified tokens in front of the hub's current verifier."""
    verifier = token_verifier(hub)
    found = hub.extras.get(_TOKENS)
    if isinstance(found, VerifiedTokens) and found.verifier is verifier:
        return found
    made = VerifiedTokens(verifier)
    hub.extras[_TOKENS] = made
    return made


def guards(hub: Hub) -> Guards:
    found = hub.extras.get(_GUARDS)
    if isinstance(found, Guards):
        return found
    made = default_guards(hub.settings.rate_limit)
    hub.extras[_GUARDS] = made
    return made


async def request_context(hub: Hub, authorization: str | None, client: str) -> Context:
    """The context of one request: who is asking, from its Authorization header."""
    principal: Principal | None = None
    error: Unauthenticated | None = None
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            error = Unauthenticated("use an Authorization: Bearer <token> header")
        else:
            try:
                principal = await verified_tokens(hub).verify(token.strip())
            except Unauthenticated as exc:
                error = exc
    return Context(hub, principal, error, client, guards(hub))


class _NestedTooDeeply(json.JSONDecodeError):
    """JSON nested deeper than the parser's recursion allows: refused like any bad JSON."""

    def __init__(self) -> None:
        super().__init__("nested too deeply", "", 0)


def refusal(
    message: str, status: int, code: str = "BAD_INPUT", headers: Mapping[str, str] | None = None
) -> Response:
    """A GraphQL-shaped JSON answer to a request refused before any operation ran."""
    payload = {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]}
    no_store = {NO_STORE[0].decode(): NO_STORE[1].decode()}
    return Response(
        json.dumps(payload),
        status_code=status,
        media_type="application/json",
        headers={**no_store, **(headers or {})},
    )


def http_refusal(exc: HTTPException) -> Response:
    """Strawberry's plain-text transport refusals, as GraphQL errors with a code."""
    if isinstance(exc.__cause__, InvalidOperationTypeError):  # a mutation over GET
        return refusal(exc.reason, 405, headers={"Allow": "POST"})
    if exc.status_code == 405:
        return refusal(exc.reason, 405, headers={"Allow": "GET, POST"})
    code = "NOT_FOUND" if exc.status_code == 404 else "BAD_INPUT"
    return refusal(exc.reason, exc.status_code, code)


class HubGraphQL(GraphQL[Context, None]):
    """Strawberry's view: websockets, GraphiQL, and refusals of what is not GraphQL over
    HTTP. Operations over HTTP run in ``schema.http``; here only websocket ones do."""

    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = GraphQLWSHandler

    def __init__(self, schema: strawberry.Schema, prod: bool, gate: Gate) -> None:
        super().__init__(
            schema,
            graphql_ide=None if prod else "graphiql",
            max_subscriptions_per_connection=MAX_OPERATIONS_PER_CONNECTION,
        )
        self.prod = prod
        self.gate = gate
        self.connections = Connections()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            client = scope["client"][0] if scope.get("client") else "unknown"
            reason = self.connections.refusal(client)
            if reason is not None:
                await refuse_connection(scope, receive, send, reason)
                return
            self.connections.opened(client)
            try:
                await super().__call__(scope, bounded_messages(receive, send), send)
            finally:
                self.connections.closed(client)
            return
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            response = await self.run(Request(scope, receive=receive))
        except HTTPException as exc:
            response = http_refusal(exc)
        await response(scope, receive, send)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        client = request.client.host if request.client else "unknown"
        return await request_context(
            request.app.state.hub, request.headers.get("authorization"), client
        )

    async def on_ws_connect(self, context: Context) -> UnsetType:
        # A token in connection_init replaces the upgrade request's header, if any. A bad
        # one is refused here, as over HTTP, not acknowledged.
        authorization = connection_authorization(context.connection_params)
        if authorization is not None:
            fresh = await request_context(context.hub, authorization, context.client)
            context.principal, context.auth_error = fresh.principal, fresh.auth_error
        if context.auth_error is not None:
            error = context.auth_error
            raise ConnectionRejectionError(
                {"message": error.message, "extensions": {"code": error.code}}
            )
        return UNSET

    async def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        # Every HTTP operation runs in schema.http, behind the gate; nothing reaches here
        # but what is not a GraphQL request over HTTP.
        raise HTTPException(400, "send the operation by POST or GET /graphql, as JSON")

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        if request.method != "GET" and not self._readable(request.content_type or ""):
            raise HTTPException(
                415, "send the request as JSON, with Content-Type: application/json"
            )
        return await super().parse_http_body(request)

    def _readable(self, content_type: str) -> bool:
        """The body types strawberry's parse_http_body reads (its own tests)."""
        media_type, _ = parse_content_type(content_type)
        if self.multipart_uploads_enabled and media_type == "multipart/form-data":
            return True
        return "application/json" in media_type

    def decode_json(self, data: str | bytes) -> object:
        try:
            return json.loads(data)
        except RecursionError:
            raise _NestedTooDeeply from None

    def parse_json(self, data: str | bytes) -> dict[str, Any] | list[Any]:
        # Each refusal says what is wrong; strawberry's own parsing fails with a 500 on a
        # body that is a JSON string or number, or nested past the parser's stack.
        try:
            parsed = self.decode_json(data)
        except _NestedTooDeeply:
            raise HTTPException(400, "the JSON is nested too deeply") from None
        except json.JSONDecodeError:
            raise HTTPException(400, "the request body is not valid JSON") from None
        if not isinstance(parsed, dict | list):  # strawberry expects one of these
            raise HTTPException(400, 'expected a JSON object, as in {"query": "..."}')
        return parsed

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        if result.errors:
            result.errors = [shape_error(e, self.prod) for e in result.errors]
        return process_result(result)

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        errors = response_data.get("errors") if isinstance(response_data, dict) else None
        wait = retry_after(errors) if errors else None
        if wait is not None:  # RATE_LIMITED, UNAVAILABLE: when to come back
            response.headers["Retry-After"] = str(wait)
        if errors and http_status(errors) == 503:
            response.status_code = 503
        return response


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes before anything parses them."""

    def __init__(self, app: ASGIApp, limit: int = MAX_REQUEST_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, receive, send)
            return
        # The declared length may be absent (chunked) or a lie: count what arrives.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, replaying(b"".join(chunks), receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = refusal(f"request body is larger than {self.limit} bytes", 413)
        await response(scope, receive, send)


def graphql_app(prod: bool = False) -> ASGIApp:
    """The ASGI app to mount at /graphql (HTTP and websocket)."""
    schema = build_schema(prod)
    gate = Gate(schema, prod)
    view = HubGraphQL(schema, prod, gate)
    return BodyLimit(GraphQLHTTP(schema, view, gate, prod, request_context))
