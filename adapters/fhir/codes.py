"""The systems, code systems and extension URLs of our FHIR mapping, and the
element names and limits the reader and writer share."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pydantic
from fhir.resources.bundle import Bundle as BundleR5
from fhir.resources.invoice import Invoice as InvoiceR5
from fhir.resources.R4B.bundle import Bundle as BundleR4B
from fhir.resources.R4B.invoice import Invoice as InvoiceR4B

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


@dataclass(frozen=True, slots=True)
class FhirInvoice:
    """An Invoice as the outbox takes it: the body, and the version it supersedes (a
    correction or reversal; None for a first version)."""

    body: dict[str, Any]
    supersedes: int | None = None
