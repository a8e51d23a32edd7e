"""File and request intake for every format: read, check, queue in the outbox, and
dead-letter what is refused. ``adapters/cli.py`` parses arguments and prints; what a
file or request means is decided here (HL7 messages: ``adapters/hl7v2/intake.py``).

Each ``queue_*_file`` returns a FileTally: how many documents were taken and refused,
and one line per refusal (a location and a rule, never the content).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.errors import AdapterError, MappingError
from adapters.hl7v2.batches import split_batch
from adapters.hl7v2.errors import Hl7Error
from adapters.hl7v2.intake import Hl7Intake
from adapters.hl7v2.tokenizer import decode_message
from adapters.json_documents import TypeDefinition, read_json_documents
from adapters.outbox import INTAKE_BUSY_TIMEOUT, NewDocument, Outbox, document_key
from hub.documents.invoice import INVOICE_TYPE, invoice_document_id

__all__ = [
    "FileTally",
    "enqueue_invoices",
    "expand_files",
    "queue_csv_file",
    "queue_fhir_file",
    "queue_hl7_file",
    "queue_json_file",
    "refuse_fhir",
]


@dataclass(slots=True)
class FileTally:
    """What one file gave: documents taken and refused, the refusal lines, and whether
    its envelope (an HL7 batch's counts and trailers) was sound."""

    accepted: int = 0
    refused: int = 0
    problems: list[str] = field(default_factory=list)
    envelope_ok: bool = True


def expand_files(names: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """The files to read: each name, a directory standing for its files matching
    ``patterns`` sorted by name (a stable order, so a rerun queues in the same order)."""
    files: list[str] = []
    for name in names:
        path = Path(name)
        if name == "-" or not path.is_dir():
            files.append(name)
            continue
        found = sorted(
            {child for pattern in patterns for child in path.glob(pattern) if child.is_file()}
        )
        if not found:
            raise AdapterError(f"{name}: a directory without {' or '.join(patterns)} files")
        files.extend(str(child) for child in found)
    return files


async def enqueue_invoices(
    outbox: Outbox,
    bodies: Sequence[dict[str, Any]],
    *,
    source: str,
    supersedes: Sequence[int | None] | None = None,
    busy_timeout: float | None = None,
) -> list[str]:
    """Queue valid invoice bodies (idempotent per body and supersedes); one outbox
    reference each. ``supersedes``: per body, the version it replaces (or None)."""
    versions = list(supersedes) if supersedes is not None else [None] * len(bodies)
    if len(versions) != len(bodies):
        raise ValueError("supersedes needs one entry per body")
    documents = [
        _document(INVOICE_TYPE, invoice_document_id(body), body, body["issuedAt"], source, version)
        for body, version in zip(bodies, versions, strict=True)
    ]
    return await _enqueue(outbox, documents, busy_timeout)


async def refuse_fhir(outbox: Outbox, errors: Sequence[MappingError]) -> None:
    """Dead-letter what the FHIR endpoint refused, as file mode does: the problem (an
    element path and a rule), never the resource. A request has no id to key it by, so
    each refusal is its own dead letter."""
    for error in errors:
        await asyncio.to_thread(
            outbox.refuse,
            key="",
            source="fhir",
            code=error.code,
            reason=str(error),
            busy_timeout=INTAKE_BUSY_TIMEOUT,
        )


async def queue_hl7_file(intake: Hl7Intake, name: str, data: bytes) -> FileTally:
    """Queue the DFT^P03 messages of one file (one message, several, or batches)."""
    tally = FileTally()
    try:
        text = decode_message(data)
    except Hl7Error as error:
        tally.refused += 1
        tally.problems.append(f"{name}: {error}")
        return tally
    batch = split_batch(text)
    for problem in batch.problems:
        tally.envelope_ok = False
        tally.problems.append(f"{name}: {problem}")
    for number, message in enumerate(batch.messages, start=1):
        outcome = await intake.accept(message)
        if outcome.code == "AA":
            tally.accepted += 1
        else:
            tally.refused += 1
            label = outcome.control_id or f"message {number}"
            tally.problems.append(f"{name}: {label}: {outcome.code} {outcome.error}")
    return tally


async def queue_fhir_file(outbox: Outbox, name: str, data: bytes, version: str | None) -> FileTally:
    """Queue the Invoices of one FHIR file. Each bad resource or entry is reported and
    dead-lettered; a transaction with one is refused whole."""
    from adapters.fhir import FhirInvoice, fhir_resource_to_documents, is_transaction
    from adapters.fhir.jsonio import load_fhir_json

    payload: object = None
    try:
        payload = load_fhir_json(data)
        results = fhir_resource_to_documents(payload, version)
    except MappingError as unreadable:
        results = [(0, unreadable)]
    good = [result for _, result in results if isinstance(result, FhirInvoice)]
    failed = [(index, result) for index, result in results if isinstance(result, MappingError)]
    tally = FileTally()
    for index, problem in failed:
        await _refuse(outbox, f"fhir:{name}#{index}", "fhir-file", problem.code, str(problem))
        tally.problems.append(f"{name}: {problem}")
    if failed and is_transaction(payload):
        # All or nothing, as the REST endpoint answers a transaction.
        tally.problems.append(f"{name}: a transaction with bad entries: nothing of it queued")
        tally.refused = len(results)
        return tally
    await enqueue_invoices(
        outbox,
        [document.body for document in good],
        source="fhir-file",
        supersedes=[document.supersedes for document in good],
    )
    tally.accepted, tally.refused = len(good), len(failed)
    return tally


async def queue_csv_file(outbox: Outbox, name: str, data: bytes) -> FileTally:
    """Queue the invoices of a HIS CSV export; a bill with a bad row is refused whole."""
    from adapters.csv_export import read_csv_export

    result = read_csv_export(data)
    tally = FileTally()
    for error in result.errors:
        tally.refused += 1
        await _refuse(outbox, f"csv:{name}:{error.line}", "csv-file", "row", str(error))
        tally.problems.append(f"{name}: {error}")
    await enqueue_invoices(outbox, result.invoices, source="csv-file", supersedes=result.supersedes)
    tally.accepted = len(result.invoices)
    return tally


async def queue_json_file(
    outbox: Outbox, name: str, data: bytes, definition: TypeDefinition
) -> FileTally:
    """Queue the documents of type ``definition`` in one JSON or NDJSON file; a line
    that is no JSON object or lacks the type's id or issue time is refused by number."""
    tally = FileTally()
    documents = []
    for line in read_json_documents(data):
        problem = line.problem
        if line.body is not None:
            try:
                doc_id = definition.document_id(line.body)
                issued = definition.issued(line.body)
            except ValueError as error:
                problem = str(error)
            else:
                documents.append(
                    _document(
                        definition.name, doc_id, line.body, issued, "json-file", line.supersedes
                    )
                )
                continue
        tally.refused += 1
        await _refuse(outbox, f"json:{name}#{line.line}", "json-file", "line", problem)
        tally.problems.append(f"{name}:{line.line}: {problem}")
    await _enqueue(outbox, documents, None)
    tally.accepted = len(documents)
    return tally


def _document(
    type: str, id: str, body: dict[str, Any], issued_at: str, source: str, supersedes: int | None
) -> NewDocument:
    return NewDocument(
        key=document_key(type, id, body, supersedes),
        type=type,
        id=id,
        body=body,
        source=source,
        issued_at=issued_at,
        supersedes=supersedes,
    )


async def _enqueue(
    outbox: Outbox, documents: list[NewDocument], busy_timeout: float | None
) -> list[str]:
    if not documents:
        return []
    results = await asyncio.to_thread(outbox.enqueue, documents, busy_timeout=busy_timeout)
    return [f"#{result.seq}" for result in results]


async def _refuse(outbox: Outbox, key: str, source: str, code: str, reason: str) -> None:
    await asyncio.to_thread(outbox.refuse, key=key, source=source, code=code, reason=reason)
