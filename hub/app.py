"""The composition root: the starlette application and everything mounted on it."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub import log_http, types_http
from hub.config import Settings
from hub.metrics import GraphQLTiming, Metrics, root_fields
from hub.outage_http import OutageAnswers
from hub.readiness import write_refusal
from hub.services import Hub
from hub.web.routes import routes as web_routes
from schema.app import build_schema, graphql_app


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


async def readyz(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    refusal = await write_refusal(hub.db)
    if refusal is not None:
        return PlainTextResponse(f"not ready: {refusal}\n", status_code=503)
    return PlainTextResponse("ready\n")


GC_YOUNG_THRESHOLD = 50_000


class NoStoreByDefault:
    """``Cache-Control: no-store`` on every answer that does not set its own: only the
    public log data (``/log/...``) and the page's assets say they may be cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)


def create_app(settings: Settings | None = None, hub: Hub | None = None) -> Starlette:
    """Build the app; with `hub` given (tests), its lifecycle is the caller's."""
    settings = settings or (hub.settings if hub else Settings.from_env())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if hub is not None:
            app.state.hub = hub
            yield
            return
        started = await Hub.start(settings)
        metrics.attach(started)
        if started.witnesses is not None:
            await started.witnesses.start()
        app.state.hub = started
        # What start-up built (schema, types, keys) lives as long as the process: keep it
        # out of the collector's full passes, which otherwise walk it again and again
        # and stall a request for tens of milliseconds (the documents p99).
        gc.collect()
        gc.freeze()
        # A submitted batch of 100 invoices allocates ~10,000 containers: at the default
        # threshold (700) the collector ran ~14 times a batch and every few batches walked
        # every request in flight (~30 ms a pass), ~11% of the loop's time when submitting.
        # Garbage here is freed by reference counts; a rarer young pass costs ~3%.
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        try:
            yield
        finally:
            await started.stop()

    graphql = graphql_app(prod=settings.prod)
    metrics = Metrics(root_fields(build_schema(settings.prod).as_str()))
    routes: list[BaseRoute] = [
        Route("/graphql", graphql),
        WebSocketRoute("/graphql", graphql),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics.endpoint),
        *log_http.routes,
        *types_http.routes,
        *web_routes,
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(NoStoreByDefault),
            Middleware(GraphQLTiming, metrics),
            Middleware(OutageAnswers),
        ],
    )
    if hub is not None:
        metrics.attach(hub)
        app.state.hub = hub
    return app
