"""Views: how much of a document body a reader sees.

A view is chosen by the reader's role (DESIGN.md, "Principals and access"): the issuing
hospital and the patient the invoice is about see ``full``; an agency sees what its
best active grant for the document allows. Exactly these fields are shown:

- ``full``: the whole body, and the salt (so the reader can prove the commitment).
- ``financial``: ``billCode``, ``billNumber``, ``issuedAt``, ``issuerName``, ``status``,
  ``currency`` and all of ``totals`` (``total``, ``insuranceFund``, ``otherPayments``,
  ``personalAccount``, ``personalCash``, ``selfPay``). No ``items``, no ``visit``, no
  ``payer``, no ``patientRef``, no ``checkCode``; no salt.
- ``summary``: ``status``, ``issuedAt`` and ``totals.total`` only (the document's id,
  issuer, type and version are metadata and shown in every view); no salt.

Fields absent from the body stay absent. Document types other than medical invoices
have no financial or summary projection, so those views show only ``status`` and
``issuedAt`` when the body has them.
"""

from collections.abc import Mapping
from typing import Any, Final

FULL, FINANCIAL, SUMMARY = "full", "financial", "summary"
VIEWS: Final = (FULL, FINANCIAL, SUMMARY)
# Higher is more: with several matching grants the reader gets the widest view.
_RANK: Final = {SUMMARY: 1, FINANCIAL: 2, FULL: 3}

FINANCIAL_FIELDS: Final = (
    "billCode",
    "billNumber",
    "issuedAt",
    "issuerName",
    "status",
    "currency",
    "totals",
)
SUMMARY_FIELDS: Final = ("status", "issuedAt")
SUMMARY_TOTALS: Final = ("total",)


def wider(a: str | None, b: str | None) -> str | None:
    """The wider of two views (None = nothing visible)."""
    if a is None:
        return b
    if b is None:
        return a
    return a if _RANK[a] >= _RANK[b] else b


def project(body: Mapping[str, Any], view: str) -> dict[str, Any]:
    """The part of ``body`` that ``view`` shows; a new dict, never the stored one."""
    if view == FULL:
        return dict(body)
    if view == FINANCIAL:
        return {k: _copy(body[k]) for k in FINANCIAL_FIELDS if k in body}
    if view == SUMMARY:
        out = {k: body[k] for k in SUMMARY_FIELDS if k in body}
        totals = body.get("totals")
        if isinstance(totals, Mapping):
            out["totals"] = {k: totals[k] for k in SUMMARY_TOTALS if k in totals}
        return out
    raise ValueError(f"unknown view {view!r}")


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value
