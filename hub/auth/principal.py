"""Who a request acts for: a role, a subject and, for institutions, the institution id."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

__all__ = ["ANONYMOUS", "INSTITUTION_ROLES", "MAX_ID_LENGTH", "ROLES", "Principal"]

ROLES: Final = ("hospital", "agency", "patient", "witness", "auditor", "admin")
# Roles that act on behalf of an institution and so carry its id in `inst`.
INSTITUTION_ROLES: Final = ("hospital", "agency")
# Generous for any real subject or institution id; bounds what a token can make us store.
MAX_ID_LENGTH: Final = 256

# No token at all. Code that receives a principal treats None as anonymous.
ANONYMOUS: Final[Principal | None] = None


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    ``hospital`` and ``agency`` require ``inst``; the other roles may carry one but never
    need it. Breaking a rule raises ValueError with a message that names the rule but not
    the values, which may be personal (a patient reference is a ``sub``).
    """

    role: str
    sub: str
    inst: str | None = None
    # When the token it came from stops holding (its exp plus the leeway), in seconds since
    # the epoch; None for a principal that does not expire.
    expires_at: float | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        _check_id("sub", self.sub)
        if self.inst is None:
            if self.role in INSTITUTION_ROLES:
                raise ValueError(f"role {self.role} requires an institution (inst)")
        else:
            _check_id("inst", self.inst)

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now.timestamp() >= self.expires_at


def _check_id(name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    if len(value) > MAX_ID_LENGTH:
        raise ValueError(f"{name} is longer than {MAX_ID_LENGTH} characters")
    if not value.isprintable():
        raise ValueError(f"{name} contains control characters")
