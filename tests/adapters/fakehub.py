"""A stand-in for the hub's ``submitDocuments``, exactly as the adapter contract states it.

In-memory ledger keyed by (type, id): a new body is CREATED with the next leaf index,
the same body again is a DUPLICATE with its first leaf index, a different body is
REJECTED with CONFLICT. With a public key registered every document must carry a valid
Ed25519 signature over its canonical body, else REJECTED with BAD_SIGNATURE. It can be
told to answer 503, and to refuse a whole request that holds a "poison" id (BAD_INPUT),
as a hub would refuse a request it cannot read.

FakeHubServer serves it with uvicorn on 127.0.0.1 in a thread, and can stop and start
again on the same port; the ledger lives on across restarts, as a database would.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from adapters.signing import verify_signature
from hub.documents.canonical import canonical_json
from hub.documents.errors import BadDocument
from hub.documents.invoice import INVOICE_TYPE, invoice_document_id, validate_invoice


@dataclass
class Entry:
    body: bytes
    leaf_index: int


@dataclass
class FakeHub:
    token: str = "hospital-token"
    public_key: Ed25519PublicKey | None = None
    unavailable: bool = False
    poison_ids: set[str] = field(default_factory=set)
    ledger: dict[tuple[str, str], Entry] = field(default_factory=dict)
    # per document id: how many times it was answered CREATED (must end at 1)
    created: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    batches: list[list[str]] = field(default_factory=list)
    requests: int = 0
    # Registered document types other than the invoice, by (name, version): their
    # definitions, served by GET /types as the hub does; bodies are checked for their
    # id pointers only (the real hub validates them against the schema).
    types: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Notified under `lock` after each request's documents are in the ledger.
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def wait_until(self, condition: Callable[[FakeHub], bool], timeout: float = 30.0) -> None:
        """Block until `condition(self)` holds after a request, or fail after `timeout` s."""
        with self.changed:
            if not self.changed.wait_for(lambda: condition(self), timeout):
                raise AssertionError(f"the fake hub's ledger did not get there in {timeout} s")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/graphql", self._graphql, methods=["POST"]),
                Route("/types", self._types),
                Route("/types/{name}/{version:int}", self._type),
            ]
        )

    async def _types(self, request: Request) -> JSONResponse:
        return JSONResponse(
            [
                {"name": name, "version": version, "digest": ""}
                for name, version in sorted(self.types)
            ]
        )

    async def _type(self, request: Request) -> JSONResponse:
        key = (request.path_params["name"], request.path_params["version"])
        if key not in self.types:
            return JSONResponse({"error": "no such type"}, status_code=404)
        return JSONResponse(self.types[key])

    async def _graphql(self, request: Request) -> JSONResponse:
        with self.lock:
            self.requests += 1
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _error(401, "UNAUTHENTICATED", "token missing, expired or not signed by us")
        if self.unavailable:
            return _error(503, "UNAVAILABLE", "hub is restarting")
        payload = await request.json()
        if "submitDocuments" not in payload.get("query", ""):
            return _error(400, "BAD_INPUT", "only submitDocuments is faked")
        docs = payload["variables"]["docs"]
        if len(docs) > 500:
            return _error(200, "BAD_INPUT", "at most 500 documents per call")
        if any(doc.get("id") in self.poison_ids for doc in docs):
            return _error(200, "BAD_INPUT", "a document of this request cannot be read")
        with self.lock:
            self.batches.append([doc["id"] for doc in docs])
            results = [self._submit(doc) for doc in docs]
            size = len(self.ledger)
            self.changed.notify_all()
        for result in results:
            self.statuses[result["status"]] += 1
        checkpoint = {"origin": "fake.local/log", "treeSize": size, "rootHash": "", "note": ""}
        return JSONResponse(
            {"data": {"submitDocuments": {"results": results, "checkpoint": checkpoint}}}
        )

    def _submit(self, doc: dict[str, Any]) -> dict[str, Any]:
        doc_id, body = doc["id"], doc["body"]
        try:
            if doc["type"] == INVOICE_TYPE:
                validate_invoice(body)
                expected = invoice_document_id(body)
            else:
                expected = self._generic_id(doc["type"], body)
            if expected != doc_id:
                raise BadDocument("id", "must be made from the body as the type says")
        except BadDocument as error:
            return _rejected(doc_id, "BAD_INPUT", str(error))
        if self.public_key is not None:
            signature = doc.get("signature")
            if not signature or not verify_signature(self.public_key, body, signature):
                return _rejected(
                    doc_id,
                    "BAD_SIGNATURE",
                    "the signature does not verify with the key registered for this institution"
                    if signature
                    else "this institution must sign its documents",
                )
        canonical = canonical_json(body)
        entry = self.ledger.get((doc["type"], doc_id))
        if entry is not None:
            if entry.body != canonical:
                return _rejected(
                    doc_id, "CONFLICT", "a different body is already anchored under this id"
                )
            return _answer(doc_id, "DUPLICATE", entry.leaf_index, canonical)
        entry = Entry(canonical, len(self.ledger))
        self.ledger[(doc["type"], doc_id)] = entry
        self.created[doc_id] += 1
        return _answer(doc_id, "CREATED", entry.leaf_index, canonical)

    def _generic_id(self, name: str, body: dict[str, Any]) -> str:
        versions = [version for type_name, version in self.types if type_name == name]
        if not versions:
            raise BadDocument("type", f"unknown document type {name}")
        pointers = self.types[(name, max(versions))]["id"]
        try:
            return "-".join(str(body[pointer.lstrip("/")]) for pointer in pointers)
        except KeyError:
            raise BadDocument("id", "an id field is missing") from None


def _answer(doc_id: str, status: str, leaf_index: int, canonical: bytes) -> dict[str, Any]:
    leaf_hash = base64.b64encode(hashlib.sha256(b"\x00" + canonical).digest()).decode()
    return {
        "id": doc_id,
        "leafIndex": leaf_index,
        "leafHash": leaf_hash,
        "status": status,
        "error": None,
    }


def _rejected(doc_id: str, code: str, message: str) -> dict[str, Any]:
    return {
        "id": doc_id,
        "leafIndex": None,
        "leafHash": None,
        "status": "REJECTED",
        "error": {"code": code, "message": message},
    }


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]},
        status_code=status,
    )


class _Server(uvicorn.Server):
    """A uvicorn server that says when it is listening (or has ended), as an event."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.up = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.up.set()

    def run_then_wake(self, sock: socket.socket) -> None:
        try:
            self.run(sockets=[sock])
        finally:
            self.up.set()  # it ended: wake a waiter to report it


class FakeHubServer:
    """Serves a FakeHub over real HTTP; stop() and start() again keep the port."""

    def __init__(self, hub: FakeHub, port: int = 0) -> None:
        self.hub = hub
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.hub.app(),
            lifespan="off",
            log_level="error",
            timeout_graceful_shutdown=1,
        )
        server = _Server(config)
        self._server = server
        self._thread = threading.Thread(target=server.run_then_wake, args=(sock,), daemon=True)
        self._thread.start()
        if not server.up.wait(timeout) or not server.started:
            raise RuntimeError("fake hub did not start")

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> FakeHubServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
