"""FHIR payloads (an Invoice, or a Bundle of them) to invoice bodies: the entry points
of the mapping, with each entry's problems under its Bundle path."""

from __future__ import annotations

from typing import Any

from adapters.errors import MappingError
from adapters.fhir.codes import (
    _BUNDLE_MODELS,
    _ECHOABLE,
    _INVOICE_MODELS,
    _SUPERSEDES_VALUES,
    BUNDLE_TYPES,
    EXT_SUPERSEDES,
    FhirInvoice,
)
from adapters.fhir.jsonio import load_fhir_json
from adapters.fhir.reader import _child, _Reader
from adapters.fhir.structure import _check_version, _structure_errors
from adapters.formats import MAX_VERSION


def fhir_to_invoice(resource: object, version: str | None = None) -> dict[str, Any]:
    """The valid invoice body a FHIR Invoice maps to.

    ``version`` is ``"R4B"`` or ``"R5"``; None checks against R5, whose Invoice is a
    superset of R4B's for every element mapped here. Raises MappingError naming the
    element (a FHIRPath expression rooted at ``Invoice``).
    """
    return fhir_to_document(resource, version).body


def fhir_to_document(resource: object, version: str | None = None) -> FhirInvoice:
    """fhir_to_invoice, with the version the Invoice supersedes (EXT_SUPERSEDES)."""
    model = _INVOICE_MODELS[_check_version(version or "R5")]
    if not isinstance(resource, dict):
        raise MappingError("Invoice", "must be a JSON object", code="structure")
    kind = resource.get("resourceType")
    if kind != "Invoice":
        shown = f", not {kind}" if isinstance(kind, str) and _ECHOABLE.fullmatch(kind) else ""
        raise MappingError("Invoice", f"expected an Invoice resource{shown}", code="structure")
    errors = _structure_errors(model, resource, "Invoice")
    if errors:
        raise MappingError(
            errors[0].path, errors[0].problem, code=errors[0].code, more=tuple(errors[1:])
        )
    body = _Reader().invoice(resource)
    return FhirInvoice(body, _supersedes(resource))


def _supersedes(resource: dict[str, Any]) -> int | None:
    """The version named by the extension EXT_SUPERSEDES, None without it."""
    extensions = resource.get("extension", [])
    matches = [i for i, ext in enumerate(extensions) if ext.get("url") == EXT_SUPERSEDES]
    if not matches:
        return None
    path = f"Invoice.extension[{matches[0]}]"
    if len(matches) > 1:
        raise MappingError(
            f"Invoice.extension[{matches[1]}]", f"a second extension {EXT_SUPERSEDES}"
        )
    extension = extensions[matches[0]]
    present = [name for name in _SUPERSEDES_VALUES if name in extension]
    if len(present) != 1:
        raise MappingError(
            path,
            "supersedes needs one valuePositiveInt (or valueInteger): the version replaced",
            code="required",
        )
    value = extension[present[0]]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VERSION:
        raise MappingError(f"{path}.{present[0]}", "must be a version number, 1 or more")
    return value


def bundle_to_invoices(
    bundle: object, version: str | None = None
) -> list[tuple[int, dict[str, Any] | MappingError]]:
    """Each entry of a batch, transaction or collection Bundle, mapped on its own.

    Returns ``(entry index, body or MappingError)`` in entry order; error paths are rooted
    at the Bundle (``Bundle.entry[2].resource.lineItem[0]...``). Batch and transaction
    entries must be ``POST Invoice`` requests. Raises MappingError when the Bundle itself
    is unusable.
    """
    return [(index, _body(result)) for index, result in bundle_to_documents(bundle, version)]


def _body(result: FhirInvoice | MappingError) -> dict[str, Any] | MappingError:
    return result if isinstance(result, MappingError) else result.body


def is_transaction(payload: object) -> bool:
    """Whether ``payload`` is a transaction Bundle: all of its entries or none."""
    return (
        isinstance(payload, dict)
        and payload.get("resourceType") == "Bundle"
        and payload.get("type") == "transaction"
    )


def bundle_to_documents(
    bundle: object, version: str | None = None
) -> list[tuple[int, FhirInvoice | MappingError]]:
    """bundle_to_invoices, each entry with the version it supersedes."""
    model = _BUNDLE_MODELS[_check_version(version or "R5")]
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise MappingError("Bundle", "expected a Bundle resource", code="structure")
    kind = bundle.get("type")
    if kind not in BUNDLE_TYPES:
        raise MappingError(
            "Bundle.type", f"must be one of {', '.join(BUNDLE_TYPES)}", code="not-supported"
        )
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise MappingError("Bundle.entry", "must be a list", code="structure")
    # The envelope is checked without its entries; each entry is judged on its own below.
    envelope = {key: value for key, value in bundle.items() if key != "entry"}
    errors = _structure_errors(model, envelope, "Bundle")
    if errors:
        raise MappingError(
            errors[0].path, errors[0].problem, code=errors[0].code, more=tuple(errors[1:])
        )
    results: list[tuple[int, FhirInvoice | MappingError]] = []
    for index, entry in enumerate(entries):
        root = f"Bundle.entry[{index}]"
        try:
            results.append((index, _entry(entry, root, kind, version)))
        except MappingError as error:
            results.append((index, error.rebased("Invoice", f"{root}.resource")))
    return results


_ENTRY_ELEMENTS = frozenset(
    {
        "id",
        "extension",
        "modifierExtension",
        "link",
        "fullUrl",
        "resource",
        "search",
        "request",
        "response",
    }
)


def _entry(entry: object, root: str, kind: str, version: str | None) -> FhirInvoice:
    if not isinstance(entry, dict):
        raise MappingError(root, "must be an object", code="structure")
    for key in entry:
        if key not in _ENTRY_ELEMENTS:
            raise MappingError(_child(root, key), "unknown element", code="structure")
    if kind != "collection":
        request = entry.get("request")
        if not isinstance(request, dict):
            raise MappingError(
                f"{root}.request", f"a {kind} entry needs a request", code="required"
            )
        if request.get("method") != "POST":
            raise MappingError(
                f"{root}.request.method", "only POST (create) is supported", code="not-supported"
            )
        if request.get("url") not in ("Invoice", "/Invoice"):
            raise MappingError(
                f"{root}.request.url", "only Invoice can be created here", code="not-supported"
            )
    if "resource" not in entry:
        raise MappingError(f"{root}.resource", "required element is missing", code="required")
    return fhir_to_document(entry["resource"], version)


def fhir_payload_to_invoices(
    data: bytes | str, version: str | None = None
) -> list[tuple[int, dict[str, Any] | MappingError]]:
    """An Invoice or a Bundle of them, as FHIR JSON text (a file, a request body).

    An Invoice gives one result with index 0. Raises MappingError when the payload is
    neither.
    """
    return [(index, _body(result)) for index, result in fhir_payload_to_documents(data, version)]


def fhir_payload_to_documents(
    data: bytes | str, version: str | None = None
) -> list[tuple[int, FhirInvoice | MappingError]]:
    """fhir_payload_to_invoices, each result with the version it supersedes."""
    return fhir_resource_to_documents(load_fhir_json(data), version)


def fhir_resource_to_documents(
    payload: object, version: str | None = None
) -> list[tuple[int, FhirInvoice | MappingError]]:
    """fhir_payload_to_documents of JSON already parsed with load_fhir_json."""
    if isinstance(payload, dict) and payload.get("resourceType") == "Bundle":
        return bundle_to_documents(payload, version)
    if isinstance(payload, dict) and payload.get("resourceType") == "Invoice":
        try:
            return [(0, fhir_to_document(payload, version))]
        except MappingError as error:
            return [(0, error)]
    raise MappingError("", "expected an Invoice or a Bundle resource", code="structure")
