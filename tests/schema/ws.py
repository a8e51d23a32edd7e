"""An in-process websocket to /graphql: the app's ASGI messages through two queues.

It runs the app on the test's own event loop (with the test's hub and database), which a
threaded test client would not.
"""

import asyncio
import json
from types import TracebackType
from typing import Any

from starlette.types import ASGIApp, Message

# A guard against a hung test, not a wait: every expected message arrives at once.
TIMEOUT = 10.0


class WebSocketSession:
    def __init__(
        self, app: ASGIApp, subprotocol: str, headers: dict[str, str] | None = None
    ) -> None:
        self.app = app
        self.scope: dict[str, Any] = {
            "type": "websocket",
            "path": "/graphql",
            "raw_path": b"/graphql",
            "root_path": "",
            "scheme": "ws",
            "query_string": b"",
            "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
            "client": ("127.0.0.1", 50000),
            "server": ("hub.test", 80),
            "subprotocols": [subprotocol],
        }
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "WebSocketSession":
        self._task = asyncio.create_task(self.app(self.scope, self._to_app.get, self._from_app.put))
        await self._to_app.put({"type": "websocket.connect"})
        accepted = await self.event()
        assert accepted["type"] == "websocket.accept", accepted
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._to_app.put({"type": "websocket.disconnect", "code": 1000})
        assert self._task is not None
        await asyncio.wait_for(self._task, TIMEOUT)

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_text(json.dumps(message))

    async def send_text(self, text: str) -> None:
        await self._to_app.put({"type": "websocket.receive", "text": text})

    async def receive(self) -> dict[str, Any]:
        """The next protocol message the server sent (keep-alives skipped)."""
        while True:
            event = await self.event()
            assert event["type"] == "websocket.send", event
            message: dict[str, Any] = json.loads(event["text"])
            if message.get("type") not in ("ka", "ping", "pong"):
                return message

    async def init(self, payload: dict[str, Any] | None = None) -> None:
        await self.send({"type": "connection_init", "payload": payload or {}})
        assert (await self.receive())["type"] == "connection_ack"

    async def event(self) -> Message:
        """The next ASGI message the app sent."""
        return await asyncio.wait_for(self._from_app.get(), TIMEOUT)
