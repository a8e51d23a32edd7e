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

from adapters.fhir.bundles import (
    bundle_to_documents,
    bundle_to_invoices,
    fhir_payload_to_documents,
    fhir_payload_to_invoices,
    fhir_resource_to_documents,
    fhir_to_document,
    fhir_to_invoice,
    is_transaction,
)
from adapters.fhir.codes import (
    BUNDLE_TYPES,
    CS_CHARGE_CATEGORY,
    CS_CHARGE_ITEM,
    CS_DOCUMENT_TYPE,
    CS_PRICE_COMPONENT,
    EXT_PAYMENT,
    EXT_SUPERSEDES,
    EXT_VISIT,
    FHIR_VERSIONS,
    SYSTEM_BILL,
    SYSTEM_BILL_CODE,
    SYSTEM_BILL_NUMBER,
    SYSTEM_CHECK_CODE,
    SYSTEM_PATIENT,
    SYSTEM_PAYER_ID,
    FhirInvoice,
)
from adapters.fhir.jsonio import dump_fhir_json, load_fhir_json
from adapters.fhir.structure import operation_outcome
from adapters.fhir.writer import invoice_to_fhir

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
