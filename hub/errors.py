"""The hub's exception hierarchy: every error a caller may see derives from `HubError`.

`code` is the GraphQL `extensions.code` (DESIGN.md, "Errors"); messages are written for a
person to act on and never carry secrets or patient data.
"""


class HubError(Exception):
    code = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadInput(HubError):
    code = "BAD_INPUT"


class Conflict(HubError):
    code = "CONFLICT"


class BadSignature(HubError):
    code = "BAD_SIGNATURE"


class NotFound(HubError):
    code = "NOT_FOUND"


class Unauthenticated(HubError):
    code = "UNAUTHENTICATED"


class Forbidden(HubError):
    code = "FORBIDDEN"


class RateLimited(HubError):
    """``retry_after``: whole seconds the caller should wait (the HTTP Retry-After header)."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(HubError):
    """The database (or another dependency) is down, restarting or out of disk: nothing of
    the request was done, and the same request may succeed later (HTTP 503, Retry-After).

    ``cause`` names the fault for the server log (an exception type, a SQLSTATE, a
    description); it never carries a query, a parameter or a connection string."""

    code = "UNAVAILABLE"

    def __init__(self, message: str, cause: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.cause = cause
        self.retry_after = retry_after


class ConfigError(HubError):
    code = "CONFIG"


class IntegratorGone(HubError):
    """The process integrating ledger groups (hub.store.sqlite_integrator) ended before it
    answered; SQLite rolled back what it had not committed. The group's callers see this;
    the next group starts a new process."""


class LedgerCorrupt(HubError):
    """`hub ledger verify` found a stored row that does not match what it must be."""

    code = "LEDGER_CORRUPT"
