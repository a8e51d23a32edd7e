"""Views and scopes: which body fields each view shows, grant windows, default deny."""

from datetime import UTC, datetime

from hub.access.grants import Grant
from hub.access.views import FINANCIAL_FIELDS, project
from hub.access.visibility import scope_for
from hub.auth.principal import Principal
from hub.documents.demo_data import demo_invoices


def test_projections() -> None:
    body = demo_invoices(1)[0]
    assert project(body, "full") == body
    fin = project(body, "financial")
    assert set(fin) == set(FINANCIAL_FIELDS) and fin["totals"] == body["totals"]
    assert project(body, "summary") == {
        "status": body["status"],
        "issuedAt": body["issuedAt"],
        "totals": {"total": body["totals"]["total"]},
    }
    fin["totals"]["total"] = "0"  # a projection never aliases the stored body
    assert body["totals"]["total"] != "0" or project(body, "full")["totals"] is body["totals"]


def _grant(
    view: str, issuers: tuple[str, ...], until: str | None = None, revoked: str | None = None
) -> Grant:
    return Grant(
        "g", "ag", "medical_invoice", issuers, view, "p", "2026-01-01T00:00:00Z", until, revoked, 0
    )


def test_grant_windows() -> None:
    g = _grant("full", ("*",), until="2026-03-31")
    assert not g.active(datetime(2025, 12, 31, tzinfo=UTC))
    assert g.active(datetime(2026, 3, 31, 23, 59, tzinfo=UTC))  # the until date is included
    assert not g.active(datetime(2026, 4, 1, tzinfo=UTC))
    assert not _grant("full", ("*",), revoked="2026-02-01T00:00:00Z").active(
        datetime(2026, 2, 2, tzinfo=UTC)
    )


def test_scopes_default_deny_and_widest_view() -> None:
    agency = Principal("agency", "clerk", "ag")
    scope = scope_for(agency, [_grant("summary", ("*",)), _grant("financial", ("h1",))])
    assert scope.access("h1", "medical_invoice", "P1").view == "financial"  # type: ignore[union-attr]
    assert scope.access("h2", "medical_invoice", "P1").view == "summary"  # type: ignore[union-attr]
    assert scope.access("h1", "other_type", "P1") is None
    assert scope_for(Principal("agency", "clerk", "ag")).sql() is None
    for role in ("witness", "auditor", "admin"):
        assert scope_for(Principal(role, "x")).access("h1", "medical_invoice", None) is None
    patient = scope_for(Principal("patient", "P1", "h1"))
    assert patient.access("h1", "medical_invoice", "P1") is not None
    assert patient.access("h2", "medical_invoice", "P1") is None
    assert patient.access("h1", "medical_invoice", "P2") is None
