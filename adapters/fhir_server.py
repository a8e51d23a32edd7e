"""A small FHIR REST endpoint on the adapter: hospitals POST Invoices and Bundles of them.

- ``POST /fhir/Invoice``: one Invoice. ``202 Accepted`` once it is queued for anchoring
  (the hub has not seen it yet, so it is not "created"), with ``Content-Location`` of
  its place in the queue (``GET /fhir/_queue/<n>``: queued, delivered with its leaf
  index, or rejected by the hub with the reason). ``Prefer: return=minimal`` answers
  no body, ``return=OperationOutcome`` an informational OperationOutcome, otherwise
  (``return=representation``, the default) the Invoice as taken, ``id`` set to the
  document id.
- ``POST /fhir``: a Bundle of type ``batch``, ``transaction`` or ``collection``. A batch
  (and a collection, handled like one) answers 200 with a ``batch-response`` Bundle:
  good entries are queued (``202 Accepted``, ``response.location`` their place in the
  queue), bad ones carry their OperationOutcome. A transaction is all or nothing: one
  bad entry and the answer is an OperationOutcome listing every problem, with nothing
  queued; otherwise 200 with a ``transaction-response`` Bundle.
- ``GET /fhir/metadata``: the CapabilityStatement, in the FHIR version the Accept
  header's ``fhirVersion`` asks for (406 for one we do not speak). Public: a client
  reads it before it authenticates.
- ``GET /fhir/Invoice/<id>`` is 404 (invoices are read from the hub); ``PUT`` and
  ``DELETE`` are 405.

Errors answer with an OperationOutcome whose ``expression`` names the element, every
problem of a resource in one: 400 when the payload is not JSON or not structurally
valid FHIR, 422 when it is valid FHIR that does not make a valid invoice, 413 when it is
too large, 415 for a media type or FHIR version we do not read (or no Content-Type at
all). The FHIR version comes from the ``fhirVersion`` parameter of Content-Type (4.0,
4.0.1, 4.3, 4.3.0: R4B; 5.0, 5.0.0: R5); without it resources are read as R5, whose
Invoice is a superset of R4B's for every element we map.

With a ``credential`` every request but ``metadata`` must carry ``Authorization:
Bearer <credential>`` (401 otherwise): what the endpoint takes is delivered under the
hospital's token. The CLI refuses to bind anything but loopback without one.

Every refusal is also handed to ``refuse`` (the outbox's dead letters), one problem
text per refused resource or entry: element paths and rules, never the content.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.errors import MappingError
from adapters.fhir import (
    FhirInvoice,
    bundle_to_documents,
    dump_fhir_json,
    fhir_to_document,
    is_transaction,
    load_fhir_json,
    operation_outcome,
)
from hub.documents.invoice import invoice_document_id

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_ENTRIES",
    "Enqueue",
    "Refuse",
    "create_fhir_app",
]

# Takes validated invoices (body and supersedes); one receipt (outbox reference) each.
Enqueue = Callable[[list[FhirInvoice]], Awaitable[list[str]]]
# Records refused resources or entries as dead letters: one MappingError each.
Refuse = Callable[[list[MappingError]], Awaitable[None]]
# The state of a queued document by its receipt ("#<n>"): None when there is none.
Lookup = Callable[[str], Awaitable[dict[str, Any] | None]]

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_ENTRIES = 1000
FHIR_JSON = "application/fhir+json"

_log = logging.getLogger(__name__)
_JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")
_VERSIONS = {
    "4.0": "R4B",
    "4.0.1": "R4B",
    "4.3": "R4B",
    "4.3.0": "R4B",
    "5.0": "R5",
    "5.0.0": "R5",
}
# What metadata answers for an Accept fhirVersion: the full version number.
_SPOKEN = {"4.0": "4.0.1", "4.0.1": "4.0.1", "4.3": "4.3.0", "4.3.0": "4.3.0"}
_SPOKEN |= {"5.0": "5.0.0", "5.0.0": "5.0.0"}
_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 422: "Unprocessable Entity"}
_QUEUE = "/fhir/_queue/"
_VERSION_PROBLEM = "fhirVersion must be 4.0, 4.3 (R4B) or 5.0 (R5), or their full forms"


class _Refusal(Exception):
    """Ends a request with an OperationOutcome."""

    def __init__(self, status: int, errors: list[MappingError]) -> None:
        super().__init__(status)
        self.status = status
        self.errors = errors


def create_fhir_app(
    enqueue: Enqueue,
    *,
    refuse: Refuse | None = None,
    lookup: Lookup | None = None,
    credential: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> Starlette:
    """The FHIR endpoint; ``enqueue`` takes validated invoices and returns one receipt
    (an outbox reference) per invoice, in order; ``refuse`` records what was refused;
    ``lookup`` answers ``GET /fhir/_queue/<n>``; ``credential`` the bearer secret every
    request but metadata must carry."""

    def authorised(request: Request) -> bool:
        if credential is None:
            return True
        given = request.headers.get("authorization", "")
        scheme, _, secret = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            secret.strip().encode(), credential.encode()
        )

    async def refused(refusal: _Refusal) -> Response:
        # A failure of ours (500) is not the sender's to fix: no dead letter for it.
        if refuse is not None and refusal.status != 500:
            await _record(refuse, refusal.errors)
        return _outcome(refusal.status, operation_outcome(refusal.errors))

    async def create_invoice(request: Request) -> Response:
        if not authorised(request):
            return _unauthorised()
        try:
            resource, version = await _read(request, max_body_bytes)
            if isinstance(resource, dict) and resource.get("resourceType") == "Bundle":
                raise _Refusal(
                    400,
                    [_error("Bundle", "POST a Bundle to /fhir, not to /fhir/Invoice", "structure")],
                )
            try:
                document = fhir_to_document(resource, version)
            except MappingError as error:
                raise _Refusal(_status(error), [error]) from None
            (receipt,) = await _enqueue(enqueue, [document])
        except _Refusal as refusal:
            return await refused(refusal)
        headers = {"Content-Location": _location(request, receipt)}
        prefer = _prefer(request)
        if prefer == "minimal":
            return Response(status_code=202, headers=headers)
        if prefer == "OperationOutcome":
            return _outcome(202, _queued(document.body, receipt), headers)
        taken = {**resource, "id": invoice_document_id(document.body)}
        return _outcome(202, taken, headers)

    async def process_bundle(request: Request) -> Response:
        if not authorised(request):
            return _unauthorised()
        try:
            bundle, version = await _read(request, max_body_bytes)
            if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
                raise _Refusal(
                    400,
                    [
                        _error(
                            "", "expected a Bundle (POST an Invoice to /fhir/Invoice)", "structure"
                        )
                    ],
                )
            entries = bundle.get("entry")
            if isinstance(entries, list) and len(entries) > max_entries:
                raise _Refusal(
                    413, [_error("Bundle.entry", f"more than {max_entries} entries", "too-costly")]
                )
            try:
                results = bundle_to_documents(bundle, version)
            except MappingError as error:
                raise _Refusal(_status(error), [error]) from None
            failed = [result for _, result in results if isinstance(result, MappingError)]
            transaction = is_transaction(bundle)
            if transaction and failed:
                raise _Refusal(min(_status(error) for error in failed), failed)
            good = [document for _, document in results if isinstance(document, FhirInvoice)]
            receipts = iter(await _enqueue(enqueue, good) if good else [])
        except _Refusal as refusal:
            return await refused(refusal)
        if failed and refuse is not None:
            await _record(refuse, failed)
        response_entries = []
        for _, result in results:
            if isinstance(result, MappingError):
                status, outcome = _status(result), operation_outcome([result])
            else:
                receipt = next(receipts)
                status, outcome = 202, _queued(result.body, receipt)
            response: dict[str, Any] = {"status": f"{status} {_REASONS[status]}"}
            if status == 202:
                response["location"] = _location(request, receipt)
            response_entries.append({"response": response | {"outcome": outcome}})
        kind = "transaction-response" if transaction else "batch-response"
        return _outcome(200, {"resourceType": "Bundle", "type": kind, "entry": response_entries})

    async def metadata(request: Request) -> Response:
        asked = _accept_version(request.headers.get("accept", ""))
        if asked is not None and asked not in _SPOKEN:
            versions = ", ".join(sorted(set(_SPOKEN.values())))
            outcome = operation_outcome(
                [_error("", f"fhirVersion {asked} is not spoken here; {versions}", "not-supported")]
            )
            return _outcome(406, outcome)
        spoken = _SPOKEN[asked or "5.0"]
        statement = _CAPABILITIES | {"fhirVersion": spoken}
        return _outcome(200, statement, media=f"{FHIR_JSON}; fhirVersion={spoken[:3]}")

    async def queued(request: Request) -> Response:
        if not authorised(request):
            return _unauthorised()
        number = request.path_params["number"]
        state = await lookup(f"#{number}") if lookup is not None else None
        if state is None:
            return _outcome(
                404, operation_outcome([_error("", "no such queue entry", "not-found")])
            )
        return _outcome(200, _queue_outcome(state))

    async def read_invoice(request: Request) -> Response:
        if not authorised(request):
            return _unauthorised()
        problem = "the adapter queues invoices and keeps none: read them from the hub"
        return _outcome(404, operation_outcome([_error("Invoice", problem, "not-found")]))

    return Starlette(
        routes=[
            Route("/fhir/Invoice", create_invoice, methods=["POST"]),
            Route("/fhir/Invoice/{id}", read_invoice, methods=["GET"]),
            Route(_QUEUE + "{number:int}", queued, methods=["GET"]),
            Route("/fhir", process_bundle, methods=["POST"]),
            Route("/fhir/", process_bundle, methods=["POST"]),
            Route("/fhir/metadata", metadata, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_error},
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    # FHIR clients expect an OperationOutcome for every error, 404 and 405 included.
    assert isinstance(exc, HTTPException)
    code = "not-found" if exc.status_code == 404 else "not-supported"
    outcome = operation_outcome([_error("", exc.detail, code)])
    return JSONResponse(
        outcome, status_code=exc.status_code, headers=exc.headers, media_type=FHIR_JSON
    )


async def _read(request: Request, limit: int) -> tuple[Any, str | None]:
    """The parsed payload and the FHIR version named in Content-Type (None: not named)."""
    version = _version(request.headers.get("content-type"))
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _Refusal(413, [_error("", f"the payload exceeds {limit} bytes", "too-costly")])
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        # The declared length may be absent or false; count what actually arrives.
        if size > limit:
            raise _Refusal(413, [_error("", f"the payload exceeds {limit} bytes", "too-costly")])
        chunks.append(chunk)
    try:
        return load_fhir_json(b"".join(chunks)), version
    except MappingError as error:
        raise _Refusal(400, [error]) from None


def _version(content_type: str | None) -> str | None:
    if content_type is None:
        # Without a media type the body is anybody's guess; say which one we read.
        raise _Refusal(
            415,
            [_error("", "Content-Type is required: application/fhir+json", "not-supported")],
        )
    media, *parameters = (part.strip() for part in content_type.split(";"))
    if media.lower() not in _JSON_TYPES:
        raise _Refusal(
            415, [_error("", "only FHIR JSON (application/fhir+json) is read", "not-supported")]
        )
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "fhirversion":
            version = _VERSIONS.get(value.strip().strip('"'))
            if version is None:
                raise _Refusal(
                    415,
                    [
                        _error(
                            "",
                            "fhirVersion must be 4.0, 4.3 (R4B) or 5.0 (R5), or their full forms",
                            "not-supported",
                        )
                    ],
                )
            return version
    return None


async def _enqueue(enqueue: Enqueue, documents: list[FhirInvoice]) -> list[str]:
    try:
        receipts = list(await enqueue(documents))
    except Exception:
        # The hospital retries; what went wrong is for the adapter's log, not the reply.
        _log.exception("could not queue %d invoice(s) for anchoring", len(documents))
        raise _Refusal(
            500, [_error("", "could not queue the invoices; nothing was queued", "exception")]
        ) from None
    if len(receipts) != len(documents):
        _log.error("the outbox returned %d receipts for %d invoices", len(receipts), len(documents))
        raise _Refusal(500, [_error("", "the outbox answered out of step", "exception")])
    return receipts


async def _record(refuse: Refuse, errors: list[MappingError]) -> None:
    try:
        await refuse(errors)
    except Exception:  # the sender still gets its answer
        _log.exception("could not record %d refused FHIR resource(s)", len(errors))


def _queued(body: dict[str, Any], receipt: str) -> dict[str, Any]:
    document_id = invoice_document_id(body)
    note = f"invoice {document_id} queued for anchoring"
    if receipt != document_id:
        note += f" (outbox {receipt})"
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "information", "code": "informational", "diagnostics": note}],
    }


def _status(error: MappingError) -> int:
    # 400: not JSON, or not FHIR; 422: FHIR that does not make a valid invoice.
    return 400 if any(problem.code == "structure" for problem in error.all) else 422


def _error(path: str, problem: str, code: str) -> MappingError:
    return MappingError(path, problem, code=code)


def _outcome(
    status: int,
    resource: dict[str, Any],
    headers: dict[str, str] | None = None,
    *,
    media: str = FHIR_JSON,
) -> Response:
    # dump_fhir_json: a resource read with load_fhir_json holds Decimals, written exactly.
    return Response(dump_fhir_json(resource), status_code=status, headers=headers, media_type=media)


def _unauthorised() -> Response:
    outcome = operation_outcome(
        [_error("", "a credential is required: Authorization: Bearer <secret>", "login")]
    )
    return _outcome(401, outcome, {"WWW-Authenticate": 'Bearer realm="fhir"'})


def _location(request: Request, receipt: str) -> str:
    """Where a queued document's state is read: the receipt's outbox number."""
    return f"{_QUEUE}{receipt.lstrip('#')}"


def _prefer(request: Request) -> str:
    """The ``return`` preference of a Prefer header (RFC 7240): minimal,
    representation or OperationOutcome; representation when none is given."""
    for part in request.headers.get("prefer", "").split(";"):
        for item in part.split(","):
            name, _, value = item.strip().partition("=")
            if name.strip().lower() == "return":
                return value.strip().strip('"')
    return "representation"


def _accept_version(accept: str) -> str | None:
    """The fhirVersion an Accept header asks for, or None."""
    for media in accept.split(","):
        for parameter in media.split(";")[1:]:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "fhirversion":
                return value.strip().strip('"')
    return None


def _queue_outcome(state: dict[str, Any]) -> dict[str, Any]:
    """An OperationOutcome saying where a queued invoice stands."""
    if state["state"] == "delivered":
        note = f"delivered: {state['result']} at leaf {state['leafIndex']}"
        issue = {"severity": "information", "code": "informational", "diagnostics": note}
    elif state["state"] == "dead":
        note = f"rejected by the hub: {state['errorCode']}: {state['errorMessage']}"
        issue = {"severity": "error", "code": "processing", "diagnostics": note}
    else:
        note = f"queued for anchoring ({state['attempts']} delivery attempts so far)"
        issue = {"severity": "information", "code": "informational", "diagnostics": note}
    return {"resourceType": "OperationOutcome", "issue": [issue]}


_CAPABILITIES: dict[str, Any] = {
    "resourceType": "CapabilityStatement",
    "status": "active",
    "date": "2026-01-01",
    "kind": "instance",
    "software": {"name": "ledger-hub FHIR adapter"},
    "implementation": {"description": "Queues medical invoices for anchoring in Ledger Hub"},
    "fhirVersion": "5.0.0",
    "format": ["json"],
    "rest": [
        {
            "mode": "server",
            "resource": [{"type": "Invoice", "interaction": [{"code": "create"}]}],
            "interaction": [{"code": "batch"}, {"code": "transaction"}],
        }
    ],
}
