"""Role checks. Default deny: an operation lists the roles that may call it.

A role that may never call an operation gets FORBIDDEN; a caller without a token gets
UNAUTHENTICATED. Whether a particular document exists is never revealed by these checks:
documents a caller may not see are NOT_FOUND, like documents that do not exist.
"""

from strawberry.types import Info

from hub.auth.principal import Principal
from hub.errors import Forbidden, Unauthenticated
from schema.context import Context
from schema.gate import NEEDS_TOKEN

HOSPITAL, AGENCY, PATIENT, WITNESS, AUDITOR, ADMIN = (
    "hospital",
    "agency",
    "patient",
    "witness",
    "auditor",
    "admin",
)
DOCUMENT_READERS = (HOSPITAL, AGENCY, PATIENT)
ACCESS_LOG_READERS = (HOSPITAL, AGENCY, PATIENT, AUDITOR)
GRANT_READERS = (AGENCY, AUDITOR, ADMIN)


def context(info: Info) -> Context:
    ctx = info.context
    assert isinstance(ctx, Context)
    return ctx


def require(info: Info, *roles: str) -> Principal:
    """The caller, if its role is one of ``roles`` (any role when none are given)."""
    principal = context(info).principal
    if principal is None:
        raise Unauthenticated(NEEDS_TOKEN)
    if roles and principal.role not in roles:
        raise Forbidden(f"the {principal.role} role may not do this")
    return principal
