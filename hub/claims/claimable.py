"""How much of a document may be claimed, and money as claims write it.

The one place the claimable amount is decided: the document-type registry will say it per
type (a `claimable` JSON Pointer, or a rule set's computation); until then the medical
invoice's rule is here and every other type is not claimable.
"""

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from hub.documents.invoice import INVOICE_TYPE

CENT = Decimal("0.01")
# Decimal strings as bodies write money: at most 2 places, no sign, no exponent.
_MONEY = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?")


def parse_money(text: object) -> Decimal | None:
    """A decimal money string as a Decimal of cents; None if it is not one."""
    if not isinstance(text, str) or not _MONEY.fullmatch(text):
        return None
    return Decimal(text).quantize(CENT)


def money_text(value: Decimal) -> str:
    """Money as claims show it: two places, e.g. ``12.50``."""
    return f"{value.quantize(CENT):f}"


def claimable_amount(document_type: str, body: Mapping[str, Any]) -> Decimal | None:
    """The whole amount that claims on this document may add up to; None if the type is
    not claimable (or the body does not say)."""
    if document_type == INVOICE_TYPE:
        # What the patient paid: the insurance fund's share was never theirs to claim.
        totals = body.get("totals")
        if not isinstance(totals, Mapping):
            return None
        account = parse_money(totals.get("personalAccount"))
        cash = parse_money(totals.get("personalCash"))
        if account is None or cash is None:
            return None
        return account + cash
    return None
