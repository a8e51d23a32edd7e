"""GraphQL over websockets: the token a browser sends in connection_init, and a last check
that every error a websocket message carries has its extensions.code.

The errors of operations are shaped as over HTTP by ``schema.limits.ErrorCodes`` as they
stream; the handlers also send a few errors of their own (the per-connection operation
limit), which only the check at sending sees.
"""

from collections.abc import Mapping

from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import Message
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import OperationMessage

from schema.context import Context

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
    async def send_message(self, message: Message) -> None:
        with_codes(message)
        await super().send_message(message)


class GraphQLWSHandler(BaseGraphQLWSHandler[Context, None]):
    async def send_message(self, message: OperationMessage) -> None:
        with_codes(message)
        await super().send_message(message)
