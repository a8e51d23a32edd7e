"""Prometheus metrics: one registry per app, so tests that build several apps never collide.

Label values come from closed sets only (document statuses, error codes, the schema's root
fields), never from what a client sends, so a client cannot grow the series without bound.
"""

import json
import logging
import time
from collections.abc import Collection, Sequence
from functools import lru_cache
from urllib.parse import parse_qs

from graphql import FieldNode, GraphQLError, OperationDefinitionNode, parse
from graphql import build_schema as build_sdl_schema
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.documents.service import DocumentService, SubmitOutcome, SubmittedDocument
from hub.ledger.sequencer import Integrated, Sequencer
from hub.ledger.storage import SignedHead, read_checkpoint
from hub.outages import outage
from hub.services import Hub
from hub.store.db import Database
from hub.witness.metrics import WitnessCollector

log = logging.getLogger(__name__)
OTHER = "other"
GRAPHQL_PATH = "/graphql"
# Bigger bodies are refused before parsing (schema.limits); labelling never reads more.
_MAX_LABEL_BODY = 1 << 20
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# In the text format each counter's and histogram's `_created` sample comes out as a gauge
# family of its own (`hub_documents_created`), which reads like a count of documents
# created; Prometheus does not use it (it detects resets itself). A process-wide switch.
disable_created_metrics()


@lru_cache(maxsize=4)
def root_fields(sdl: str) -> frozenset[str]:
    """`type.field` for every root field of a schema in SDL (the label values we allow)."""
    schema = build_sdl_schema(sdl)
    roots = {
        "query": schema.query_type,
        "mutation": schema.mutation_type,
        "subscription": schema.subscription_type,
    }
    return frozenset(f"{kind}.{name}" for kind, t in roots.items() if t for name in t.fields)


# Where the GraphQL app leaves the (query, operationName) it parsed from the body.
PARSED_REQUEST_KEY = "hub.graphql"


@lru_cache(maxsize=1024)
def _first_field(query: str, operation_name: str | None) -> str:
    """`type.field` of the first root field of the operation that runs, or "" when unknown."""
    try:
        document = parse(query, no_location=True, max_tokens=10_000)
    except GraphQLError:
        return ""
    for node in document.definitions:
        if not isinstance(node, OperationDefinitionNode):
            continue
        if operation_name is not None and (node.name is None or node.name.value != operation_name):
            continue
        for selection in node.selection_set.selections:
            if isinstance(selection, FieldNode):
                return f"{node.operation.value}.{selection.name.value}"
        return ""
    return ""


def operation_label(method: str, query_string: bytes, body: bytes) -> str:
    """The root field a GraphQL HTTP request asks for, as `type.field` (unvalidated)."""
    if method == "GET":
        params = parse_qs(query_string.decode("latin-1"))
        query = params.get("query", [None])[0]
        name = params.get("operationName", [None])[0]
    else:
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's stack
            return ""
        if not isinstance(payload, dict):
            return ""
        query, name = payload.get("query"), payload.get("operationName")
    if not isinstance(query, str) or not (name is None or isinstance(name, str)):
        return ""
    return _first_field(query, name)


class Metrics:
    """The hub's metrics, in their own registry; `attach` hooks them to a running Hub."""

    def __init__(self, operations: Collection[str] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._witness_metrics = False
        self.operations = frozenset(operations)
        # The standard process_* (CPU, memory, descriptors) and python_* (GC, version)
        # families, as prometheus_client's default registry has them.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.documents = Counter(
            "hub_documents",
            "Documents submitted, by outcome: status CREATED, DUPLICATE or REJECTED;"
            " code is the rejection's error code (empty when accepted)",
            ["status", "code"],
            registry=self.registry,
        )
        self.batch_submissions = Histogram(
            "hub_ledger_batch_submissions",
            "Submissions (submitDocuments calls) group-committed by one integration",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_entries = Histogram(
            "hub_ledger_batch_entries",
            "Leaves appended by one integration",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.integration_seconds = Histogram(
            "hub_ledger_integration_seconds",
            "Time of one integrating transaction, ledger lock wait included",
            buckets=_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.tree_size = Gauge(
            "hub_ledger_tree_size",
            "Leaves in the ledger at its latest signed checkpoint",
            registry=self.registry,
        )
        self.graphql_seconds = Histogram(
            "hub_graphql_request_seconds",
            "GraphQL HTTP requests by operation (the first root field, type.field)",
            ["operation"],
            buckets=_SECONDS_BUCKETS,
            registry=self.registry,
        )

    def observe_integration(self, done: Integrated) -> None:
        self.batch_submissions.observe(done.submissions)
        self.batch_entries.observe(done.entries)
        self.integration_seconds.observe(done.seconds)
        self.tree_size.set(done.tree_size)

    def observe_results(self, results: Sequence[SubmitOutcome]) -> None:
        for result in results:
            code = result.error.code if result.error is not None else ""
            self.documents.labels(result.status, code).inc()

    def observe_graphql(self, label: str, seconds: float) -> None:
        operation = label if label in self.operations else OTHER
        self.graphql_seconds.labels(operation).observe(seconds)

    def attach(self, hub: Hub) -> None:
        """Observe the hub's integrations and count what its submissions come to."""
        witnesses = hub.witnesses
        if witnesses is None:
            hub.sequencer.observer = self.observe_integration
        else:

            def observe(done: Integrated) -> None:
                self.observe_integration(done)
                witnesses.wake()

            hub.sequencer.observer = observe
            if not self._witness_metrics:
                self.registry.register(WitnessCollector(witnesses))
                self._witness_metrics = True
        hub.documents = MeteredDocumentService(hub.db, hub.sequencer, self)

    async def endpoint(self, request: Request) -> Response:
        # The tree grows through every replica; read its size rather than trust our own view.
        db: Database = request.app.state.hub.db
        try:
            head = await read_checkpoint(db)
        except Exception as exc:
            if outage(exc) is None:
                raise
            head = None  # the database is down: the last size seen, and the process metrics
        if head is not None:
            self.tree_size.set(head.size)
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        return GraphQLTiming(app, self)


class MeteredDocumentService(DocumentService):
    def __init__(self, db: Database, sequencer: Sequencer, metrics: Metrics) -> None:
        super().__init__(db, sequencer)
        self.metrics = metrics

    async def submit(
        self, issuer: str, documents: Sequence[SubmittedDocument]
    ) -> tuple[list[SubmitOutcome], SignedHead]:
        results, head = await super().submit(issuer, documents)
        self.metrics.observe_results(results)
        return results, head


class GraphQLTiming:
    """Times each GraphQL HTTP request, labelled by the root field it asks for.

    It copies the body as the app reads it (never reading ahead), and works the label out
    after the answer is sent, so it adds nothing to the request's latency.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != GRAPHQL_PATH:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        seen = 0

        async def copying_receive() -> Message:
            nonlocal seen
            message = await receive()
            chunk = message.get("body", b"") if message["type"] == "http.request" else b""
            seen += len(chunk)
            if seen <= _MAX_LABEL_BODY:
                chunks.append(chunk)
            return message

        started = time.perf_counter()
        try:
            await self.app(scope, copying_receive, send)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.observe_graphql(_safe_label(scope, chunks, seen), elapsed)


def _safe_label(scope: Scope, chunks: list[bytes], seen: int) -> str:
    """The request's label; "" (other) when it cannot be worked out. Labelling runs after
    the answer, where a raise would turn a served request into a server error."""
    try:
        parsed = scope.get(PARSED_REQUEST_KEY)
        if parsed is not None:  # the GraphQL app read the body already
            return _first_field(*parsed)
        body = b"".join(chunks) if seen <= _MAX_LABEL_BODY else b""
        return operation_label(scope["method"], scope.get("query_string", b""), body)
    except Exception as exc:  # a metric is never worth a failed request
        # The type only: an exception's text may quote the request.
        log.warning("could not label a GraphQL request for metrics: %s", type(exc).__name__)
        return ""
