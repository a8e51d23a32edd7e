"""The GraphQL endpoint: schema, HTTP/websocket view, authentication and body limit."""

import json
import logging
from functools import cache
from typing import Any

import strawberry
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.http import GraphQLHTTPResponse, process_result
from strawberry.types import ExecutionContext, ExecutionResult

from hub.access.ratelimit import GuessLimiter, request_limiter
from hub.auth.jwks import JwksCache
from hub.auth.principal import Principal
from hub.auth.tokens import (
    AuthError,
    TokenSettings,
    TokenVerifier,
    kid_for,
    load_or_create_jwt_key,
)
from hub.services import Hub
from schema.context import Context, Guards
from schema.executor import HubExecutionContext
from schema.http import GraphQLPost, replaying
from schema.limits import (
    MAX_REQUEST_BYTES,
    DevLimits,
    ErrorCodes,
    Guard,
    ProdLimits,
    is_unexpected,
    shape_error,
)
from schema.mutations import Mutation
from schema.queries import Query
from schema.resolvers import use_attribute_resolvers
from schema.subscriptions import Subscription
from schema.token_cache import VerifiedTokens

log = logging.getLogger(__name__)
CACHE_SIZE = 1024
_GUARDS, _VERIFIER, _TOKENS = "graphql.guards", "graphql.verifier", "graphql.tokens"


def _parser_cache() -> ParserCache:
    return ParserCache(maxsize=CACHE_SIZE)


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
            ErrorCodes,  # first, so it shapes the errors of every later extension
            ProdLimits if prod else DevLimits,
            _parser_cache,
            _validation_cache,
            Guard,
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
    error: AuthError | None = None
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            error = AuthError("use an Authorization: Bearer <token> header")
        else:
            try:
                principal = await verified_tokens(hub).verify(token.strip())
            except AuthError as exc:
                error = exc
    return Context(hub, principal, error, client, guards(hub))


class HubGraphQL(GraphQL[Context, None]):
    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        client = request.client.host if request.client else "unknown"
        return await request_context(
            request.app.state.hub, request.headers.get("authorization"), client
        )

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        if result.errors:
            result.errors = [shape_error(e) for e in result.errors]
        return process_result(result)


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
        payload: dict[str, Any] = {
            "data": None,
            "errors": [
                {
                    "message": f"request body is larger than {self.limit} bytes",
                    "extensions": {"code": "BAD_INPUT"},
                }
            ],
        }
        response = Response(json.dumps(payload), status_code=413, media_type="application/json")
        await response(scope, receive, send)


def graphql_app(prod: bool = False) -> ASGIApp:
    """The ASGI app to mount at /graphql (HTTP and websocket)."""
    schema = build_schema(prod)
    view = HubGraphQL(schema, graphql_ide=None if prod else "graphiql")
    return BodyLimit(GraphQLPost(schema, view, prod, request_context))
