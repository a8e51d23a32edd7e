"""FHIR Invoice (R4B and R5) to and from the medical invoice body.

Pure mapping, no I/O. The element-by-element table, the systems and the extension URLs
are in ``adapters/README.md`` (section "FHIR"); the rules in short:

- FHIR decimals are read exactly (parse FHIR JSON with ``load_fhir_json``: numbers
  become ``Decimal``) and written exactly (``dump_fhir_json``). Money becomes a string
  with exactly 2 decimals, a quantity one without trailing zeros, so the same bill
  gives the same body whatever the channel. A ``float`` is accepted from Python callers
  only because every valid amount has at most 14 significant digits, which a double
  and its shortest ``repr`` carry exactly.
- The resource first passes the fhir.resources model of its version (structure), then
  the mapping (required elements, our systems and extensions), then ``validate_invoice``
  (the invoice's rules). Every problem is a ``MappingError`` whose ``path`` is a FHIRPath
  expression; problems the invoice rules find keep the invoice field in ``field``.
- Elements the table does not name (``text``, ``meta``, ``participant``, ``account``,
  ``note``, ``totalPriceComponent``, foreign extensions, ...) are ignored.
- The version a correction or reversal supersedes is not part of the body: it rides in
  the extension ``EXT_SUPERSEDES`` and comes out of the ``*_documents`` functions
  (``FhirInvoice.supersedes``), which are what the outbox takes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pydantic
from fhir.resources.bundle import Bundle as BundleR5
from fhir.resources.invoice import Invoice as InvoiceR5
from fhir.resources.R4B.bundle import Bundle as BundleR4B
from fhir.resources.R4B.invoice import Invoice as InvoiceR4B

from adapters.errors import MappingError
from hub.documents.errors import BadDocument
from hub.documents.invoice import CATEGORIES, invoice_document_id, validate_invoice

__all__ = [
    "BUNDLE_TYPES",
    "CS_CHARGE_CATEGORY",
    "CS_CHARGE_ITEM",
    "CS_DOCUMENT_TYPE",
    "CS_PRICE_COMPONENT",
    "EXT_PAYMENT",
    "EXT_SUPERSEDES",
    "EXT_VISIT",
    "FHIR_VERSIONS",
    "SYSTEM_BILL",
    "SYSTEM_BILL_CODE",
    "SYSTEM_BILL_NUMBER",
    "SYSTEM_CHECK_CODE",
    "SYSTEM_PATIENT",
    "SYSTEM_PAYER_ID",
    "FhirInvoice",
    "bundle_to_documents",
    "bundle_to_invoices",
    "dump_fhir_json",
    "fhir_payload_to_documents",
    "fhir_payload_to_invoices",
    "fhir_resource_to_documents",
    "fhir_to_document",
    "fhir_to_invoice",
    "invoice_to_fhir",
    "is_transaction",
    "load_fhir_json",
    "operation_outcome",
]

FHIR_VERSIONS = ("R4B", "R5")
BUNDLE_TYPES = ("batch", "transaction", "collection")

_BASE = "https://ledger-hub.local/fhir"
SYSTEM_BILL = "urn:ledger-hub:bill"
SYSTEM_BILL_CODE = "urn:ledger-hub:bill-code"
SYSTEM_BILL_NUMBER = "urn:ledger-hub:bill-number"
SYSTEM_CHECK_CODE = "urn:ledger-hub:check-code"
SYSTEM_PATIENT = "urn:ledger-hub:patient"
SYSTEM_PAYER_ID = "urn:ledger-hub:payer-id-masked"
CS_CHARGE_ITEM = f"{_BASE}/CodeSystem/charge-item"
CS_CHARGE_CATEGORY = f"{_BASE}/CodeSystem/charge-category"
CS_PRICE_COMPONENT = f"{_BASE}/CodeSystem/price-component"
CS_DOCUMENT_TYPE = f"{_BASE}/CodeSystem/document-type"
EXT_VISIT = f"{_BASE}/StructureDefinition/visit"
EXT_PAYMENT = f"{_BASE}/StructureDefinition/payment"
# A simple extension on Invoice: the version (1, 2, ...) this invoice replaces.
EXT_SUPERSEDES = f"{_BASE}/StructureDefinition/supersedes"

_UNIT_PRICE = "unit-price"
_DOCUMENT_TYPE = ("medical_invoice", "医疗收费电子票据")
_REVERSED = "reversed"
# FHIR status -> invoice status; "balanced" (paid in full) is how some HIS mark a paid bill.
_STATUS_IN = {"issued": "issued", "balanced": "issued", "cancelled": "reversed"}
_PAYMENT_KEYS = ("insuranceFund", "otherPayments", "personalAccount", "personalCash", "selfPay")
# sub-extension url (= body.visit key) -> its value[x] element
_VISIT_PARTS = {
    "type": "valueCode",
    "department": "valueString",
    "recordNumber": "valueString",
    "admittedOn": "valueDate",
    "dischargedOn": "valueDate",
}
_INVOICE_MODELS: dict[str, type[pydantic.BaseModel]] = {"R4B": InvoiceR4B, "R5": InvoiceR5}
_BUNDLE_MODELS: dict[str, type[pydantic.BaseModel]] = {"R4B": BundleR4B, "R5": BundleR5}
_ECHOABLE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_MAX_PROBLEM_CHARS = 300
# Beyond this exponent a number is no amount; formatting it plainly would only cost memory.
_MAX_EXPONENT = 30
_SUPERSEDES_VALUES = ("valuePositiveInt", "valueInteger")
# FHIR integers are 32-bit.
_MAX_VERSION = 2**31 - 1


@dataclass(frozen=True, slots=True)
class FhirInvoice:
    """An Invoice as the outbox takes it: the body, and the version it supersedes (a
    correction or reversal; None for a first version)."""

    body: dict[str, Any]
    supersedes: int | None = None


# --- invoice -> FHIR ---------------------------------------------------------------------


def invoice_to_fhir(
    body: dict[str, Any], version: str = "R5", *, supersedes: int | None = None
) -> dict[str, Any]:
    """The FHIR Invoice of a valid invoice body; money values are ``Decimal``.

    ``supersedes`` (the version a correction or reversal replaces) is written as the
    extension EXT_SUPERSEDES. Raises BadDocument if ``body`` is not a valid invoice,
    ValueError for an unknown version or a supersedes below 1. Serialise the result
    with ``dump_fhir_json`` to keep the decimals exact.
    """
    _check_version(version)
    if supersedes is not None and not 1 <= supersedes <= _MAX_VERSION:
        raise ValueError("supersedes must be a version number, 1 or more")
    validate_invoice(body)
    currency = body["currency"]
    document_id = invoice_document_id(body)
    visit = body["visit"]
    resource: dict[str, Any] = {
        "resourceType": "Invoice",
        "id": document_id,
        "extension": [
            {
                "url": EXT_VISIT,
                "extension": [
                    {"url": key, element: visit[key]}
                    for key, element in _VISIT_PARTS.items()
                    if visit[key] is not None
                ],
            },
            {
                "url": EXT_PAYMENT,
                "extension": [
                    {"url": key, "valueMoney": _money(body["totals"][key], currency)}
                    for key in _PAYMENT_KEYS
                ],
            },
        ],
        "identifier": [
            {"use": "official", "system": SYSTEM_BILL, "value": document_id},
            {"system": SYSTEM_BILL_CODE, "value": body["billCode"]},
            {"system": SYSTEM_BILL_NUMBER, "value": body["billNumber"]},
            {"system": SYSTEM_CHECK_CODE, "value": body["checkCode"]},
        ],
        "status": "issued" if body["status"] == "issued" else "cancelled",
    }
    if supersedes is not None:
        resource["extension"].append({"url": EXT_SUPERSEDES, "valuePositiveInt": supersedes})
    if body["status"] == _REVERSED:
        resource["cancelledReason"] = _REVERSED
    code, display = _DOCUMENT_TYPE
    resource["type"] = {"coding": [{"system": CS_DOCUMENT_TYPE, "code": code, "display": display}]}
    resource["subject"] = {
        "type": "Patient",
        "identifier": {"system": SYSTEM_PATIENT, "value": body["patientRef"]},
    }
    resource["recipient"] = {
        "identifier": {"system": SYSTEM_PAYER_ID, "value": body["payer"]["idMasked"]},
        "display": body["payer"]["name"],
    }
    # R5 deprecates Invoice.date in favour of Invoice.creation; R4B only has date.
    resource["creation" if version == "R5" else "date"] = body["issuedAt"]
    resource["issuer"] = {"type": "Organization", "display": body["issuerName"]}
    resource["lineItem"] = [
        _line_item(index, item, currency) for index, item in enumerate(body["items"])
    ]
    resource["totalNet"] = _money(body["totals"]["total"], currency)
    resource["totalGross"] = _money(body["totals"]["total"], currency)
    return resource


def _line_item(index: int, item: dict[str, str], currency: str) -> dict[str, Any]:
    return {
        "sequence": index + 1,
        "chargeItemCodeableConcept": {
            "coding": [
                {"system": CS_CHARGE_ITEM, "code": item["code"], "display": item["name"]},
                {
                    "system": CS_CHARGE_CATEGORY,
                    "code": item["category"],
                    "display": CATEGORIES[item["category"]],
                },
            ],
            "text": item["name"],
        },
        "priceComponent": [
            {
                "type": "base",
                "factor": Decimal(item["quantity"]),
                "amount": _money(item["amount"], currency),
            },
            {
                # informational: shown, not added up (the base component carries the amount)
                "type": "informational",
                "code": {
                    "coding": [
                        {"system": CS_PRICE_COMPONENT, "code": _UNIT_PRICE, "display": "Unit price"}
                    ]
                },
                "amount": _money(item["unitPrice"], currency),
            },
        ],
    }


def _money(text: str, currency: str) -> dict[str, Any]:
    return {"value": Decimal(text), "currency": currency}


# --- FHIR -> invoice ---------------------------------------------------------------------


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
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_VERSION:
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


class _Reader:
    """Reads one structurally valid Invoice; remembers which element gave each field."""

    def __init__(self) -> None:
        self.where: dict[str, str] = {}
        self.currency = ""

    def invoice(self, resource: dict[str, Any]) -> dict[str, Any]:
        # Currency first: every Money is checked against it.
        total = self._totals_and_currency(resource)
        bill_code, bill_number, check_code = self._identifiers(resource)
        status = self._status(resource)
        issued_at = self._issued_at(resource)
        issuer_name = self._text(
            self._object(resource, "issuer", "Invoice"),
            "display",
            "Invoice.issuer",
            "body.issuerName",
        )
        body = {
            "billCode": bill_code,
            "billNumber": bill_number,
            "checkCode": check_code,
            "issuedAt": issued_at,
            "issuerName": issuer_name,
            "payer": self._payer(resource),
            "patientRef": self._patient(resource),
            "visit": self._visit(resource),
            "items": self._items(resource),
            "totals": {"total": total, **self._payment(resource)},
            "currency": self.currency,
            "status": status,
        }
        try:
            validate_invoice(body)
        except BadDocument as error:
            raise MappingError(
                self._locate(error.field), error.problem, code="business-rule", field=error.field
            ) from None
        # After the invoice rules, so that a malformed total is reported as such first.
        self._net_equals_gross(resource, total)
        return body

    # - elements ---------------------------------------------------------------------------

    def _totals_and_currency(self, resource: dict[str, Any]) -> str:
        gross = resource.get("totalGross")
        name = "totalGross" if gross is not None else "totalNet"
        chosen = gross if gross is not None else resource.get("totalNet")
        if not isinstance(chosen, dict):
            raise MappingError(
                "Invoice.totalGross", "the invoice total is required", code="required"
            )
        currency = chosen.get("currency")
        if not isinstance(currency, str):
            raise MappingError(
                f"Invoice.{name}.currency", "required element is missing", code="required"
            )
        self.currency = currency
        self.where["body.currency"] = f"Invoice.{name}.currency"
        return self._amount(chosen, f"Invoice.{name}", "body.totals.total")

    def _net_equals_gross(self, resource: dict[str, Any], total: str) -> None:
        net = resource.get("totalNet")
        if resource.get("totalGross") is None or not isinstance(net, dict):
            return
        if self._amount(net, "Invoice.totalNet", None) != total:
            raise MappingError(
                "Invoice.totalNet.value",
                "differs from totalGross; a medical e-bill carries no tax",
                code="business-rule",
            )

    def _identifiers(self, resource: dict[str, Any]) -> tuple[str, str, str]:
        found: dict[str, tuple[str, str]] = {}
        for index, identifier in enumerate(resource.get("identifier", [])):
            system = identifier.get("system")
            if system in (SYSTEM_BILL, SYSTEM_BILL_CODE, SYSTEM_BILL_NUMBER, SYSTEM_CHECK_CODE):
                path = f"Invoice.identifier[{index}]"
                if system in found:
                    raise MappingError(path, f"a second identifier with system {system}")
                found[system] = (self._text(identifier, "value", path, None), f"{path}.value")
        combined = found.get(SYSTEM_BILL)
        parts = combined[0].split("-") if combined is not None else []
        values = []
        for system, field, position in (
            (SYSTEM_BILL_CODE, "body.billCode", 0),
            (SYSTEM_BILL_NUMBER, "body.billNumber", 1),
        ):
            if system in found:
                value, path = found[system]
            elif combined is not None and len(parts) == 2:
                value, path = parts[position], combined[1]
            else:
                raise MappingError(
                    "Invoice.identifier",
                    f"needs an identifier with system {system} (or {SYSTEM_BILL} "
                    "with the value <billCode>-<billNumber>)",
                    code="required",
                )
            self.where[field] = path
            values.append(value)
        bill_code, bill_number = values
        if combined is not None and combined[0] != f"{bill_code}-{bill_number}":
            raise MappingError(
                combined[1],
                f"must be <billCode>-<billNumber> and agree with the {SYSTEM_BILL_CODE} "
                f"and {SYSTEM_BILL_NUMBER} identifiers",
            )
        if SYSTEM_CHECK_CODE not in found:
            raise MappingError(
                "Invoice.identifier",
                f"needs an identifier with system {SYSTEM_CHECK_CODE} (the check code)",
                code="required",
            )
        check_code, self.where["body.checkCode"] = found[SYSTEM_CHECK_CODE]
        return bill_code, bill_number, check_code

    def _status(self, resource: dict[str, Any]) -> str:
        self.where["body.status"] = "Invoice.status"
        status = resource.get("status")
        if status is None:
            raise MappingError("Invoice.status", "required element is missing", code="required")
        if status not in _STATUS_IN:
            raise MappingError(
                "Invoice.status",
                "only issued (or balanced) and cancelled invoices are anchored",
                code="not-supported",
            )
        return _STATUS_IN[status]

    def _issued_at(self, resource: dict[str, Any]) -> str:
        creation, date = resource.get("creation"), resource.get("date")
        if creation is not None and date is not None and creation != date:
            raise MappingError("Invoice.date", "differs from Invoice.creation")
        name = "creation" if creation is not None else "date"
        if resource.get(name) is None:
            raise MappingError(
                "Invoice.date",
                "required (R5: Invoice.creation): when the bill was issued",
                code="required",
            )
        self.where["body.issuedAt"] = f"Invoice.{name}"
        value = resource[name]
        return _string(value, f"Invoice.{name}")

    def _payer(self, resource: dict[str, Any]) -> dict[str, str]:
        recipient = self._object(resource, "recipient", "Invoice")
        self.where["body.payer"] = "Invoice.recipient"
        name = self._text(recipient, "display", "Invoice.recipient", "body.payer.name")
        identifier = self._object(recipient, "identifier", "Invoice.recipient")
        masked = self._text(
            identifier, "value", "Invoice.recipient.identifier", "body.payer.idMasked"
        )
        return {"name": name, "idMasked": masked}

    def _patient(self, resource: dict[str, Any]) -> str:
        subject = self._object(resource, "subject", "Invoice")
        identifier = subject.get("identifier")
        if isinstance(identifier, dict) and identifier.get("value") is not None:
            return self._text(identifier, "value", "Invoice.subject.identifier", "body.patientRef")
        reference = subject.get("reference")
        if isinstance(reference, str) and reference.startswith("Patient/"):
            self.where["body.patientRef"] = "Invoice.subject.reference"
            return reference.removeprefix("Patient/")
        raise MappingError(
            "Invoice.subject.identifier",
            "the patient needs an identifier (or a Patient/<id> reference)",
            code="required",
        )

    def _visit(self, resource: dict[str, Any]) -> dict[str, str | None]:
        path, parts = self._extension(resource, EXT_VISIT)
        self.where["body.visit"] = path
        visit: dict[str, str | None] = {}
        for key, element in _VISIT_PARTS.items():
            found = parts.get(key)
            if found is None:
                if key in ("admittedOn", "dischargedOn"):
                    visit[key] = None
                    continue
                raise MappingError(
                    f"{path}.extension", f"needs the sub-extension {key}", code="required"
                )
            part_path, part = found
            if element not in part:
                raise MappingError(part_path, f"{key} must have a {element}")
            self.where[f"body.visit.{key}"] = f"{part_path}.{element}"
            visit[key] = _string(part[element], f"{part_path}.{element}")
        return visit

    def _payment(self, resource: dict[str, Any]) -> dict[str, str]:
        path, parts = self._extension(resource, EXT_PAYMENT)
        self.where["body.totals"] = path
        payment = {}
        for key in _PAYMENT_KEYS:
            if key not in parts:
                raise MappingError(
                    f"{path}.extension", f"needs the sub-extension {key}", code="required"
                )
            part_path, part = parts[key]
            money = part.get("valueMoney")
            if not isinstance(money, dict):
                raise MappingError(part_path, f"{key} must have a valueMoney")
            payment[key] = self._amount(money, f"{part_path}.valueMoney", f"body.totals.{key}")
        return payment

    def _extension(
        self, resource: dict[str, Any], url: str
    ) -> tuple[str, dict[str, tuple[str, dict[str, Any]]]]:
        """The path of our extension ``url`` and its sub-extensions by url."""
        matches = [
            index
            for index, extension in enumerate(resource.get("extension", []))
            if extension.get("url") == url
        ]
        if not matches:
            raise MappingError("Invoice.extension", f"needs the extension {url}", code="required")
        path = f"Invoice.extension[{matches[0]}]"
        if len(matches) > 1:
            raise MappingError(f"Invoice.extension[{matches[1]}]", f"a second extension {url}")
        allowed = _VISIT_PARTS if url == EXT_VISIT else _PAYMENT_KEYS
        parts: dict[str, tuple[str, dict[str, Any]]] = {}
        for index, part in enumerate(resource["extension"][matches[0]].get("extension", [])):
            part_path = f"{path}.extension[{index}]"
            name = part.get("url")
            if name not in allowed:
                raise MappingError(
                    f"{part_path}.url", f"unknown sub-extension; one of {', '.join(allowed)}"
                )
            if name in parts:
                raise MappingError(part_path, f"a second sub-extension {name}")
            parts[name] = (part_path, part)
        return path, parts

    def _items(self, resource: dict[str, Any]) -> list[dict[str, str]]:
        self.where["body.items"] = "Invoice.lineItem"
        return [
            self._item(line, f"Invoice.lineItem[{index}]", f"body.items[{index}]")
            for index, line in enumerate(resource.get("lineItem", []))
        ]

    def _item(self, line: dict[str, Any], path: str, field: str) -> dict[str, str]:
        self.where[field] = path
        concept = line.get("chargeItemCodeableConcept")
        if concept is None:
            raise MappingError(
                f"{path}.chargeItemReference",
                "charge items are not resolved: give the item inline as chargeItemCodeableConcept",
                code="not-supported",
            )
        concept_path = f"{path}.chargeItemCodeableConcept"
        codings = list(enumerate(concept.get("coding", [])))
        categories = [(i, c) for i, c in codings if c.get("system") == CS_CHARGE_CATEGORY]
        if not categories:
            raise MappingError(
                f"{concept_path}.coding",
                f"needs a coding with system {CS_CHARGE_CATEGORY} (the charge category)",
                code="required",
            )
        ours = [(i, c) for i, c in codings if c.get("system") == CS_CHARGE_ITEM]
        others = [(i, c) for i, c in codings if c.get("system") != CS_CHARGE_CATEGORY]
        # A foreign billing code is accepted when it is the only candidate.
        candidates = ours or others
        if len(candidates) != 1:
            raise MappingError(
                f"{concept_path}.coding",
                f"needs one coding with system {CS_CHARGE_ITEM} (the item code)",
                code="required",
            )
        category_index, category = categories[0]
        item_index, item = candidates[0]
        category_path = f"{concept_path}.coding[{category_index}]"
        item_path = f"{concept_path}.coding[{item_index}]"
        if concept.get("text") is not None:
            name = self._text(concept, "text", concept_path, f"{field}.name")
        else:
            name = self._text(item, "display", item_path, f"{field}.name")
        quantity, amount, unit_price = self._prices(line, path, field)
        return {
            "category": self._text(category, "code", category_path, f"{field}.category"),
            "code": self._text(item, "code", item_path, f"{field}.code"),
            "name": name,
            "quantity": quantity,
            "unitPrice": unit_price,
            "amount": amount,
        }

    def _prices(self, line: dict[str, Any], path: str, field: str) -> tuple[str, str, str]:
        base: tuple[str, dict[str, Any]] | None = None
        unit: tuple[str, dict[str, Any]] | None = None
        for index, component in enumerate(line.get("priceComponent", [])):
            component_path = f"{path}.priceComponent[{index}]"
            kind = component.get("type")
            if kind == "base":
                if base is not None:
                    raise MappingError(component_path, "a second base component")
                base = (component_path, component)
            elif kind == "informational":
                if _has_code(component.get("code"), CS_PRICE_COMPONENT, _UNIT_PRICE):
                    if unit is not None:
                        raise MappingError(component_path, "a second unit-price component")
                    unit = (component_path, component)
            else:
                raise MappingError(
                    f"{component_path}.type",
                    "only base and informational components are supported; a medical e-bill "
                    "has no surcharge, deduction, discount or tax per line",
                    code="not-supported",
                )
        if base is None:
            raise MappingError(
                f"{path}.priceComponent",
                "needs a base component carrying the line amount (factor = quantity)",
                code="required",
            )
        base_path, component = base
        if component.get("factor") is None:
            quantity = "1"
            self.where[f"{field}.quantity"] = base_path
        else:
            self.where[f"{field}.quantity"] = f"{base_path}.factor"
            quantity = _quantity_text(_decimal(component["factor"], f"{base_path}.factor"))
        money = self._object(component, "amount", base_path)
        amount = self._amount(money, f"{base_path}.amount", f"{field}.amount")
        if unit is not None:
            unit_path, unit_component = unit
            money = self._object(unit_component, "amount", unit_path)
            return (
                quantity,
                amount,
                self._amount(money, f"{unit_path}.amount", f"{field}.unitPrice"),
            )
        derived = _exact_unit_price(quantity, amount)
        if derived is None:
            raise MappingError(
                f"{path}.priceComponent",
                "needs an informational component with code "
                f"{CS_PRICE_COMPONENT}#{_UNIT_PRICE}: the unit price follows from the amount "
                "only for a whole quantity",
                code="required",
            )
        self.where[f"{field}.unitPrice"] = f"{base_path}.amount.value"
        return quantity, amount, derived

    # - primitives -------------------------------------------------------------------------

    def _object(self, parent: dict[str, Any], key: str, path: str) -> dict[str, Any]:
        value = parent.get(key)
        if value is None:
            raise MappingError(f"{path}.{key}", "required element is missing", code="required")
        if not isinstance(value, dict):
            raise MappingError(f"{path}.{key}", "must be an object", code="structure")
        return value

    def _text(self, parent: dict[str, Any], key: str, path: str, field: str | None) -> str:
        element = f"{path}.{key}"
        if field is not None:
            self.where[field] = element
        if parent.get(key) is None:
            raise MappingError(element, "required element is missing", code="required")
        return _string(parent[key], element)

    def _amount(self, money: dict[str, Any], path: str, field: str | None) -> str:
        if field is not None:
            self.where[field] = f"{path}.value"
        currency = money.get("currency")
        if currency is not None and currency != self.currency:
            raise MappingError(f"{path}.currency", "differs from the currency of the invoice total")
        if money.get("value") is None:
            raise MappingError(f"{path}.value", "required element is missing", code="required")
        return _money_text(_decimal(money["value"], f"{path}.value"))

    def _locate(self, field: str) -> str:
        probe: str | None = field
        while probe is not None:
            if probe in self.where:
                return self.where[probe]
            probe = _parent(probe)
        return "Invoice"


def _string(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise MappingError(path, "must be a string", code="structure")
    return value


def _decimal(value: object, path: str) -> Decimal:
    if isinstance(value, Decimal) and value.is_finite():
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        # Shortest repr: exact for every decimal of at most 15 significant digits.
        return Decimal(repr(value))
    raise MappingError(path, "must be a JSON number", code="structure")


def _money_text(value: Decimal) -> str:
    """Exactly 2 decimals when that loses nothing; otherwise the plain text, which the
    invoice rules then refuse with their own message."""
    return _plain(value, keep=2)


def _quantity_text(value: Decimal) -> str:
    return _plain(value, keep=0)


def _plain(value: Decimal, keep: int) -> str:
    if abs(value.adjusted()) > _MAX_EXPONENT:
        return str(value)
    whole, _, fraction = f"{value:f}".partition(".")
    fraction = fraction.rstrip("0")
    if len(fraction) > 2:
        return f"{whole}.{fraction}"
    fraction = fraction.ljust(keep, "0")
    return f"{whole}.{fraction}" if fraction else whole


def _exact_unit_price(quantity: str, amount: str) -> str | None:
    """``amount / quantity`` when the quantity is whole and the division exact to the cent.

    Only then is the unit price certain: with a fractional quantity the amount was
    rounded, and several unit prices give it.
    """
    try:
        count, total = Decimal(quantity), Decimal(amount)
    except ArithmeticError:
        return None
    if not count.is_finite() or count <= 0 or count != count.to_integral_value():
        return None
    if not total.is_finite() or abs(total.adjusted()) > _MAX_EXPONENT:
        return None
    price = total / count
    cents = price.quantize(Decimal("0.01"))
    return _money_text(cents) if cents * count == total else None


def _has_code(concept: object, system: str, code: str) -> bool:
    if not isinstance(concept, dict):
        return False
    return any(
        coding.get("system") == system and coding.get("code") == code
        for coding in concept.get("coding", [])
    )


def _parent(field: str) -> str | None:
    cut = max(field.rfind("."), field.rfind("["))
    return field[:cut] if cut > 0 else None


def _child(path: str, key: str) -> str:
    shown = key if _ECHOABLE.fullmatch(key) else "?"
    return f"{path}.{shown}"


# --- structure (fhir.resources) ----------------------------------------------------------


def _structure_errors(
    model: type[pydantic.BaseModel], resource: dict[str, Any], root: str
) -> list[MappingError]:
    try:
        model.model_validate(resource)
    except pydantic.ValidationError as exc:
        return [_pydantic_error(error, root) for error in exc.errors()]
    except (ValueError, TypeError) as exc:  # fhir.resources raises a few plain errors
        return [MappingError(root, _clip(str(exc)), code="structure")]
    return []


def _pydantic_error(error: Any, root: str) -> MappingError:
    path = root
    for part in error["loc"]:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "resource_type":
            path += ".resourceType"
        else:
            # "_status" carries the extensions of the primitive "status".
            path = _child(path, str(part).removeprefix("_"))
    kind = error["type"]
    if kind == "extra_forbidden":
        return MappingError(path, "unknown element", code="structure")
    if kind == "missing":
        return MappingError(path, "required element is missing", code="required")
    if kind == "string_pattern_mismatch":
        return MappingError(path, "is not in the format of its FHIR type", code="structure")
    problem = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    if isinstance(value, str) and value.strip() and value in problem:
        # A validator quoting what it was given would echo a name or an id.
        problem = problem.replace(value, "…")
    return MappingError(path, _clip(" ".join(problem.split())), code="structure")


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_PROBLEM_CHARS else text[: _MAX_PROBLEM_CHARS - 1] + "…"


def _check_version(version: str) -> str:
    if version not in FHIR_VERSIONS:
        raise ValueError(f"FHIR version must be one of {', '.join(FHIR_VERSIONS)}")
    return version


# --- OperationOutcome --------------------------------------------------------------------


def operation_outcome(errors: Iterable[MappingError]) -> dict[str, Any]:
    """An OperationOutcome with one error issue per problem (``MappingError.all``).

    ``expression`` names the element; ``diagnostics`` says what is wrong and, for a
    problem the invoice rules found, which invoice field. No problems gives a single
    informational issue, as an OperationOutcome needs at least one.
    """
    issues: list[dict[str, Any]] = []
    for error in errors:
        for problem in error.all:
            diagnostics = problem.problem
            if problem.field is not None:
                diagnostics += f" (invoice field {problem.field})"
            issue: dict[str, Any] = {
                "severity": "error",
                "code": problem.code,
                "diagnostics": diagnostics,
            }
            if problem.path:
                issue["expression"] = [problem.path]
            issues.append(issue)
    if not issues:
        issues.append({"severity": "information", "code": "informational", "diagnostics": "ok"})
    return {"resourceType": "OperationOutcome", "issue": issues}


# --- JSON --------------------------------------------------------------------------------


def load_fhir_json(data: bytes | str) -> Any:
    """Parse FHIR JSON with exact decimals; MappingError (empty path) if it is not JSON.

    Numbers with a fraction or exponent become ``Decimal``; NaN and Infinity, which
    JSON does not have, and repeated keys in an object are refused.
    """
    try:
        return json.loads(
            data,
            parse_float=Decimal,
            parse_constant=_refuse_constant,
            object_pairs_hook=_unique_keys,
        )
    except (ValueError, RecursionError) as exc:
        detail = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        raise MappingError("", f"not valid JSON: {_clip(detail)}", code="structure") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            shown = key if _ECHOABLE.fullmatch(key) else "?"
            raise ValueError(f"the key {shown} appears twice in one object")
        result[key] = value
    return result


def dump_fhir_json(value: Any, *, indent: int | None = None) -> str:
    """FHIR JSON text of ``value``; a ``Decimal`` is written as the number it is.

    ``json.dumps`` cannot write a Decimal as a number without going through float,
    which would turn 25.00 into 25.0 (the scale is part of a FHIR decimal).
    """
    parts: list[str] = []
    _dump(value, parts, indent, 0)
    return "".join(parts)


def _dump(value: Any, out: list[str], indent: int | None, depth: int) -> None:
    if isinstance(value, dict):
        _dump_container("{", "}", list(value.items()), out, indent, depth, _dump_pair)
    elif isinstance(value, list | tuple):
        _dump_container("[", "]", list(value), out, indent, depth, _dump)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("NaN and Infinity are not JSON numbers")
        out.append(f"{value:f}" if abs(value.adjusted()) <= _MAX_EXPONENT else str(value))
    else:
        out.append(json.dumps(value, ensure_ascii=False, allow_nan=False))


def _dump_pair(pair: tuple[str, Any], out: list[str], indent: int | None, depth: int) -> None:
    key, value = pair
    out.append(json.dumps(key, ensure_ascii=False))
    out.append(": " if indent is not None else ":")
    _dump(value, out, indent, depth)


def _dump_container(
    opening: str,
    closing: str,
    members: list[Any],
    out: list[str],
    indent: int | None,
    depth: int,
    dump_member: Callable[[Any, list[str], int | None, int], None],
) -> None:
    out.append(opening)
    for index, member in enumerate(members):
        if index:
            out.append(",")
        if indent is not None:
            out.append("\n" + " " * (indent * (depth + 1)))
        dump_member(member, out, indent, depth + 1)
    if members and indent is not None:
        out.append("\n" + " " * (indent * depth))
    out.append(closing)
