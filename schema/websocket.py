"""GraphQL over websockets: the token a browser sends in connection_init, the gate every
operation passes (as over HTTP), the caps on connections, and a last check that every
error a websocket message carries has its extensions.code.

Both protocols run queries, mutations and subscriptions: graphql-transport-ws, and the
legacy graphql-ws (gql's default), whose strawberry handler runs subscriptions only.
The errors of operations are shaped as over HTTP by ``schema.limits.ErrorCodes`` as they
stream; the handlers also send a few errors of their own (the per-connection operation
limit), which only the check at sending sees.
"""

import asyncio
from collections import Counter
from collections.abc import AsyncGenerator, Mapping
from typing import Any, Final, Protocol

from graphql import GraphQLError
from starlette.types import Message as ASGIMessage
from starlette.types import Receive, Scope, Send
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import Message, SubscribeMessage
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    OperationMessage,
    StartMessage,
)
from strawberry.types.execution import ExecutionResult, PreExecutionError

from schema.context import Context
from schema.gate import Gate, Refused
from schema.limits import MAX_REQUEST_BYTES, shape_error

# Per process: a client (address) may hold a few sockets, the process a bounded number.
MAX_CONNECTIONS_PER_CLIENT: Final = 8
MAX_CONNECTIONS: Final = 1000
MAX_OPERATIONS_PER_CONNECTION: Final = 20
TRY_AGAIN_LATER: Final = 1013  # RFC 6455 "Try Again Later"


class GatedView(Protocol):
    gate: Gate
    prod: bool


class Connections:
    """Counts open websockets per client address and in all; refuses past the caps."""

    def __init__(
        self, per_client: int = MAX_CONNECTIONS_PER_CLIENT, total: int = MAX_CONNECTIONS
    ) -> None:
        self.per_client = per_client
        self.total = total
        self._open: Counter[str] = Counter()

    def refusal(self, client: str) -> str | None:
        """Why ``client`` may not open another socket now; None when it may."""
        if sum(self._open.values()) >= self.total:
            return "the server has too many websocket connections: try again later"
        if self._open[client] >= self.per_client:
            return f"at most {self.per_client} websocket connections per client"
        return None

    def opened(self, client: str) -> None:
        self._open[client] += 1

    def closed(self, client: str) -> None:
        self._open[client] -= 1
        if self._open[client] <= 0:
            del self._open[client]


MESSAGE_TOO_BIG: Final = 1009  # RFC 6455


def bounded_messages(receive: Receive, send: Send, limit: int = MAX_REQUEST_BYTES) -> Receive:
    """``receive`` for a websocket whose messages may be at most ``limit`` bytes, as an HTTP
    body: a larger one closes the socket (1009) before anything parses it."""

    async def bounded() -> ASGIMessage:
        message = await receive()
        if message["type"] == "websocket.receive":
            size = len(message.get("text") or "") + len(message.get("bytes") or b"")
            if size > limit:
                reason = f"a message may be at most {limit} bytes"
                await send({"type": "websocket.close", "code": MESSAGE_TOO_BIG, "reason": reason})
                return {"type": "websocket.disconnect", "code": MESSAGE_TOO_BIG}
        return message

    return bounded


async def refuse_connection(scope: Scope, receive: Receive, send: Send, reason: str) -> None:
    """Accept (so a browser sees the reason) and close at once with 1013."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    offered = scope.get("subprotocols") or []
    known = [p for p in offered if p in (GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL)]
    await send({"type": "websocket.accept", "subprotocol": known[0] if known else None})
    await send({"type": "websocket.close", "code": TRY_AGAIN_LATER, "reason": reason})


def _gate(view: Any, context: Context, payload: object) -> tuple[Refused | None, list[Any]]:
    """The gate's verdict on one websocket operation, with its errors shaped."""
    context.begin_operation()
    data = payload if isinstance(payload, dict) else {}
    gated: GatedView = view
    verdict = gated.gate.admit(
        context, data.get("query"), data.get("variables"), data.get("operationName")
    )
    if not isinstance(verdict, Refused):
        return None, []
    return verdict, [shape_error(e, gated.prod).formatted for e in verdict.errors]


DEFAULT_CODE = "BAD_INPUT"


def connection_authorization(params: object) -> str | None:
    """The Authorization value a websocket's connection_init payload carries, if any.

    Browsers cannot set headers on a websocket, so their clients send the token here:
    ``{"Authorization": "Bearer ..."}`` (any case) or ``{"token": "..."}``.
    """
    if not isinstance(params, dict):
        return None
    for key, value in params.items():
        name = key.lower() if isinstance(key, str) else ""
        if name in ("authorization", "token"):
            if not isinstance(value, str):
                return ""  # refused like a malformed header
            return value if name == "authorization" else f"Bearer {value}"
    return None


def _errors_in(message: Mapping[str, object]) -> list[object]:
    payload = message.get("payload")
    kind = message.get("type")
    if kind == "error":  # a list (graphql-transport-ws) or one error (graphql-ws)
        return payload if isinstance(payload, list) else [payload]
    if kind in ("next", "data") and isinstance(payload, dict):
        return list(payload.get("errors") or ())
    return []


def with_codes(message: Mapping[str, object]) -> None:
    """Give each error in ``message`` an extensions.code (in place) if it has none."""
    for error in _errors_in(message):
        if isinstance(error, dict):
            extensions = error.setdefault("extensions", {})
            if isinstance(extensions, dict):
                extensions.setdefault("code", DEFAULT_CODE)


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if self.connection_acknowledged and message["id"] not in self.operations:
            verdict, errors = _gate(self.view, self.context, message.get("payload"))
            if verdict is not None:
                await self.send_message({"id": message["id"], "type": "error", "payload": errors})
                return
        await super().handle_subscribe(message)

    async def send_message(self, message: Message) -> None:
        with_codes(message)
        await super().send_message(message)


class GraphQLWSHandler(BaseGraphQLWSHandler[Context, None]):
    async def handle_start(self, message: StartMessage) -> None:
        if self.connection_acknowledged:
            verdict, errors = _gate(self.view, self.context, message.get("payload"))
            if verdict is not None:
                await self.send_message(
                    {"id": message["id"], "type": "error", "payload": errors[0]}
                )
                return
        await super().handle_start(message)

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        # As strawberry's, but through schema.stream, which runs queries and mutations
        # too (one result, then complete), where schema.subscribe refuses them.
        try:
            results = await self.schema.stream(
                query,
                variable_values=variables,
                context_value=self.context,
                root_value=self.root_value,
                operation_name=operation_name,
            )
            self.subscriptions[operation_id] = results
            await self._send_results(operation_id, results)
            await self.send_message({"type": "complete", "id": operation_id})
        except asyncio.CancelledError:
            await self.send_message({"type": "complete", "id": operation_id})
        finally:
            self.subscriptions.pop(operation_id, None)
            self.tasks.pop(operation_id, None)

    async def _send_results(self, operation_id: str, results: AsyncGenerator[Any, None]) -> None:
        first = True
        async for result in results:
            if first and isinstance(result, PreExecutionError) and result.errors:
                error: GraphQLError = result.errors[0]
                await self.send_message(
                    {"type": "error", "id": operation_id, "payload": error.formatted}
                )
                return
            if isinstance(result, ExecutionResult):
                await self.send_data_message(result, operation_id)
            first = False

    async def send_message(self, message: OperationMessage) -> None:
        with_codes(message)
        await super().send_message(message)
