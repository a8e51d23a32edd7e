"""Which documents a principal sees, and in which view (default deny).

A scope is a list of rules; a document is visible when a rule matches it, in the widest
view of the matching rules. The same rules filter in SQL (lists, counts) and in Python
(single documents), so a list and a lookup can never disagree.

- hospital: every document it issued, ``full``.
- patient: the documents whose subject (the type's ``subject`` field, an invoice's
  ``patientRef``) is the token's ``sub``, ``full``. A subject means something only to
  whoever assigned it, so a patient token carries ``inst`` and reads only that issuer's
  documents; without ``inst`` it reads only types whose subject is national
  (``"subjectScope": "national"``), from every issuer.
- agency: for each active grant, documents of the grant's type from its issuers, in the
  grant's view; and, when its kind issues a type (a bureau's receipts, settlements),
  every document it issued itself, ``full``.
- witness, auditor, admin: no documents (the auditor reads the access log instead).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hub.access.grants import ALL_ISSUERS, Grant
from hub.access.views import FULL, wider
from hub.auth.principal import Principal


@dataclass(frozen=True)
class Rule:
    view: str
    type: str | None = None
    issuers: tuple[str, ...] | None = None  # None: any issuer
    subject: str | None = None
    purpose: str | None = None
    types: tuple[str, ...] | None = None  # None: any type

    def matches(self, issuer: str, doc_type: str, subject: str | None) -> bool:
        if self.type is not None and doc_type != self.type:
            return False
        if self.types is not None and doc_type not in self.types:
            return False
        if self.issuers is not None and issuer not in self.issuers:
            return False
        return self.subject is None or subject == self.subject

    def sql(self, prefix: str = "", in_leaf_order: bool = False) -> tuple[str, list[Any]]:
        """``in_leaf_order``: for a query that walks documents by leaf index (a page); type
        and issuer match most rows, so their indexes must not lure the planner into sorting
        the whole table, and `col || ''` hides them (the subject index stays usable)."""
        parts, params = [], []
        hide = "|| ''" if in_leaf_order else ""
        if self.type is not None:
            parts.append(f"({prefix}type{hide}) = ?")
            params.append(self.type)
        if self.types is not None:
            parts.append(f"({prefix}type{hide}) IN ({','.join('?' * len(self.types))})")
            params.extend(self.types)
        if self.issuers is not None:
            parts.append(f"({prefix}issuer{hide}) IN ({','.join('?' * len(self.issuers))})")
            params.extend(self.issuers)
        if self.subject is not None:
            parts.append(f"{prefix}subject = ?")
            params.append(self.subject)
        return "(" + (" AND ".join(parts) or "1 = 1") + ")", params


@dataclass(frozen=True)
class Access:
    """How a principal may see one document: the view and, for agencies, the purpose."""

    view: str
    purpose: str | None


@dataclass(frozen=True)
class Scope:
    rules: tuple[Rule, ...]

    def access(self, issuer: str, doc_type: str, subject: str | None) -> Access | None:
        best: Rule | None = None
        for rule in self.rules:
            if rule.matches(issuer, doc_type, subject) and (
                best is None or wider(best.view, rule.view) != best.view
            ):
                best = rule
        return None if best is None else Access(best.view, best.purpose)

    def sql(self, prefix: str = "", in_leaf_order: bool = False) -> tuple[str, list[Any]] | None:
        """A WHERE clause selecting the visible documents; None when nothing is visible."""
        if not self.rules:
            return None
        clauses, params = [], []
        for rule in self.rules:
            clause, values = rule.sql(prefix, in_leaf_order)
            clauses.append(clause)
            params.extend(values)
        return "(" + " OR ".join(clauses) + ")", params


NOTHING = Scope(())


def scope_for(
    principal: Principal | None,
    grants: Sequence[Grant] = (),
    national: Sequence[str] = (),
    issuer: bool = False,
) -> Scope:
    """The documents ``principal`` may read; ``grants`` are the agency's active grants,
    ``national`` the types whose subject is a national identifier, ``issuer`` whether
    the agency's kind issues a type."""
    if principal is None:
        return NOTHING
    if principal.role == "hospital":
        return Scope((Rule(FULL, issuers=(str(principal.inst),)),))
    if principal.role == "patient":
        if principal.inst:
            return Scope((Rule(FULL, issuers=(principal.inst,), subject=principal.sub),))
        if not national:
            return NOTHING
        return Scope((Rule(FULL, subject=principal.sub, types=tuple(sorted(national))),))
    if principal.role == "agency":
        own = (Rule(FULL, issuers=(principal.inst,)),) if issuer and principal.inst else ()
        return Scope(
            own
            + tuple(
                Rule(
                    g.view,
                    type=g.type,
                    issuers=None if ALL_ISSUERS in g.issuers else g.issuers,
                    purpose=g.purpose,
                )
                for g in grants
                if g.agency == principal.inst
            )
        )
    return NOTHING
