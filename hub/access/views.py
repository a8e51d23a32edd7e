"""Views: how much of a document body a reader sees.

A view is chosen by the reader's role (DESIGN.md, "Principals and access"): the issuer
and the document's subject see ``full`` (the whole body and the salt); an agency sees the
view its best active grant for the document names. Every other view is a named list of
JSON Pointers in the document's type (its definition's ``views``): exactly those fields
are shown, nested as in the body, with no salt. For the medical invoice:

- ``financial``: ``billCode``, ``billNumber``, ``issuedAt``, ``issuerName``, ``status``,
  ``currency`` and all of ``totals``. No ``items``, no ``visit``, no ``payer``, no
  ``patientRef``, no ``checkCode``.
- ``summary``: ``status``, ``issuedAt`` and ``totals.total`` only.

The document's id, issuer, type and version are metadata, shown in every view. Fields
absent from the body stay absent; a view the type does not have shows nothing.
"""

from collections.abc import Mapping
from typing import Any, Final

from hub.documents.pointers import project as project_pointers
from hub.documents.registry import shipped_types
from hub.documents.types import DocumentType

FULL, FINANCIAL, SUMMARY = "full", "financial", "summary"
# The views the GraphQL `View` enum names (the invoice's); types may name others.
VIEWS: Final = (FULL, FINANCIAL, SUMMARY)
# Higher is more: with several matching grants the reader gets the widest view.
_RANK: Final = {SUMMARY: 1, FINANCIAL: 2, FULL: 3}
_OTHER_RANK: Final = 2

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
    """The wider of two views (None = nothing visible); of two named views, the first."""
    if a is None:
        return b
    if b is None:
        return a
    return a if _RANK.get(a, _OTHER_RANK) >= _RANK.get(b, _OTHER_RANK) else b


def project(
    body: Mapping[str, Any], view: str, doc_type: DocumentType | None = None
) -> dict[str, Any]:
    """The part of ``body`` that ``view`` of ``doc_type`` (by default the medical
    invoice) shows; a new dict, never the stored one."""
    if view == FULL:
        return dict(body)
    if doc_type is None:
        doc_type = shipped_types()[0]
    pointers = doc_type.views.get(view)
    if pointers is None:
        return {}
    return project_pointers(body, pointers)
