"""HTTP answers for a database outage outside GraphQL: 503 with Retry-After and a reason.

The log read path (/log/...), /types, the verify page's data and every other route read
the database; when it is down or full, the exception a route did not expect becomes a
503 here, for all of them at once (GraphQL maps the same faults in schema.executor).
"""

import logging

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.outages import outage

log = logging.getLogger(__name__)


class OutageAnswers:
    """ASGI middleware: a database fault escaping a route answers 503, not a bare 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            found = outage(exc)
            if found is None or started:  # a bug, or too late to answer: the server's 500
                raise
            log.warning("database unavailable: %s (%s)", found.cause, scope.get("path", ""))
            response = PlainTextResponse(
                f"{found.message}\n",
                status_code=503,
                headers={"Retry-After": str(found.retry_after), "Cache-Control": "no-store"},
            )
            await response(scope, receive, send)
