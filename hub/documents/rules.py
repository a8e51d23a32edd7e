"""Named rule sets: what a type's JSON Schema cannot say, written in code.

A definition refers to one by name (``"rules": "medical_invoice"``). A rule set checks a
body completely: it accepts only bodies its type's schema accepts (tests hold the two
together), so on the ingest path it stands in for the schema validator, and it adds the
arithmetic a schema cannot express (amounts, totals, payments).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from hub.documents.invoice import validate_invoice

__all__ = ["RULE_SETS", "RuleSet"]


class RuleSet(Protocol):
    name: str
    # The field whose value must belong to the issuer (the invoice's bill code), if any.
    issuer_code: str | None

    def validate(self, body: object) -> None:
        """BadDocument naming the first bad field, unless ``body`` is valid."""
        ...

    def claimable(self, body: object) -> Decimal | None:
        """The amount claims may book against a document with ``body``."""
        ...


@dataclass(frozen=True)
class MedicalInvoiceRules:
    """财综〔2019〕29号: items multiply out, sum to the total, payments add up."""

    name: str = "medical_invoice"
    issuer_code: str | None = "billCode"

    def validate(self, body: object) -> None:
        validate_invoice(body)

    def claimable(self, body: object) -> Decimal | None:
        # What the patient paid: the part of the bill an insurer or employer may refund.
        totals = body.get("totals") if isinstance(body, Mapping) else None
        if not isinstance(totals, Mapping):
            return None
        try:
            return Decimal(totals["personalAccount"]) + Decimal(totals["personalCash"])
        except (KeyError, TypeError, InvalidOperation):
            return None


RULE_SETS: dict[str, Any] = {"medical_invoice": MedicalInvoiceRules()}
