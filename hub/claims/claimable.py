"""How much of a document may be claimed, and money as claims write it.

Claims ask here what a document's claimable amount is; its type definition decides it (a
`claimable` JSON Pointer, or its rule set: the medical invoice's is what the patient paid,
personalAccount + personalCash).
"""

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from hub.documents import types
from hub.documents.registry import registry_for
from hub.store.db import Database

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


async def claimable_amount(
    db: Database, document_type: str, type_version: int, body: Mapping[str, Any]
) -> Decimal | None:
    """The whole amount that claims on this document may add up to, as the type version it
    was validated under says (hub.documents.types.claimable_amount); None if that type is
    not claimable or the body does not say."""
    registry = registry_for(db)
    definition = registry.version(document_type, type_version)
    if definition is None:  # registered by another process since this one last looked
        definition = (await registry.refresh()).version(document_type, type_version)
    if definition is None:
        return None
    amount = types.claimable_amount(definition, body)
    return None if amount is None or amount < 0 else amount.quantize(CENT)
