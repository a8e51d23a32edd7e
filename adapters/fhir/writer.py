"""A medical invoice body written as a FHIR Invoice (R4B or R5)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from adapters.fhir.codes import (
    _DOCUMENT_TYPE,
    _PAYMENT_KEYS,
    _REVERSED,
    _UNIT_PRICE,
    _VISIT_PARTS,
    CS_CHARGE_CATEGORY,
    CS_CHARGE_ITEM,
    CS_DOCUMENT_TYPE,
    CS_PRICE_COMPONENT,
    EXT_PAYMENT,
    EXT_SUPERSEDES,
    EXT_VISIT,
    SYSTEM_BILL,
    SYSTEM_BILL_CODE,
    SYSTEM_BILL_NUMBER,
    SYSTEM_CHECK_CODE,
    SYSTEM_PATIENT,
    SYSTEM_PAYER_ID,
)
from adapters.fhir.structure import _check_version
from adapters.formats import MAX_VERSION
from hub.documents.invoice import CATEGORIES, invoice_document_id, validate_invoice

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
    if supersedes is not None and not 1 <= supersedes <= MAX_VERSION:
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
