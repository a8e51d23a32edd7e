"""Who sees what of the claims on a document (default deny).

- the patient (the document's subject, or whoever holds its printed codes, as on the
  verify page): every claim, with agency, amount, reference and time, and the total;
- an agency: its own claims in full and, if a grant lets it claim on the document, the
  total of every agency's active claims, never another agency's name or reference;
- anyone else (the issuing hospital, admins, auditors, witnesses): nothing, not even that
  a claim exists.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from hub.access.grants import Grant
from hub.auth.principal import Principal


@dataclass(frozen=True)
class ClaimSight:
    every: bool  # every agency's claims, in full
    agency: str | None  # only this agency's own claims
    total: bool  # the total of all active claims (and so what is left)

    def shows(self, agency: str) -> bool:
        return self.every or agency == self.agency


NOTHING = ClaimSight(False, None, False)
PATIENT = ClaimSight(True, None, True)


def may_claim(grants: Sequence[Grant], issuer: str, doc_type: str) -> bool:
    """Whether one of an agency's active ``grants`` lets it claim on such a document."""
    return any(g.claims and g.covers(issuer, doc_type) for g in grants)


def sight_for(
    principal: Principal | None,
    grants: Sequence[Grant],
    issuer: str,
    doc_type: str,
    *,
    by_codes: bool = False,
) -> ClaimSight:
    """What ``principal`` sees of the claims on a document it may see; ``grants`` are an
    agency's active grants, ``by_codes`` that the document was looked up by its printed
    codes (which the patient holds)."""
    if principal is None:
        return PATIENT if by_codes else NOTHING
    if principal.role == "patient":
        return PATIENT  # a document a patient may see is about them
    if principal.role == "agency" and principal.inst is not None:
        return ClaimSight(False, principal.inst, may_claim(grants, issuer, doc_type))
    return NOTHING
