"""The project's one exception tree: every error a caller may see derives from `HubError`.

`code` is the reason in the vocabulary of whoever receives the error: DESIGN.md's GraphQL
`extensions.code` ("Errors") for what the gateway answers, the witness protocol's or the
CLI's own word for what only they see, a FHIR issue type or an HL7 table 0357 code for
the adapters' refusals. Messages are written for a person to act on and never carry
secrets or patient data. This module imports nothing, so the pure ledger core and the
adapters may raise under the same root.

    HubError                                   hub.errors
    ├── BadInput                               hub.errors
    │   ├── BadDocument                        hub.documents.errors
    │   ├── BadRequest                         schema.http
    │   ├── NoteError                          hub.ledger.note
    │   │   ├── CosignatureError               hub.ledger.cosignature
    │   │   └── PolicyError                    hub.ledger.policy
    │   ├── ProofError                         hub.ledger.tree
    │   └── ReceiptError                       hub.ledger.receipt
    ├── Conflict                               hub.errors
    ├── BadSignature                           hub.errors
    ├── NotFound                               hub.errors
    ├── Unauthenticated                        hub.errors
    ├── Forbidden                              hub.errors
    ├── RateLimited                            hub.errors
    ├── Unavailable                            hub.errors
    ├── ConfigError                            hub.errors
    │   └── JwksError                          hub.auth.jwks
    ├── IntegratorGone                         hub.errors
    ├── LedgerCorrupt                          hub.errors
    ├── NotWitnessed                           hub.witness.verify
    ├── CheckpointRefused                      hub.witness.server
    ├── WitnessFailed                          hub.witness.submitter
    ├── Misbehaviour                           hub.witness.monitor
    └── AdapterError                           adapters.errors
        ├── MappingError                       adapters.errors
        ├── Hl7Error                           adapters.hl7v2.errors
        ├── SigningKeyError                    adapters.signing
        └── HubCallError                       adapters.hub_client
            ├── HubUnavailable                 adapters.hub_client
            ├── HubAuthError                   adapters.hub_client
            ├── HubRequestError                adapters.hub_client
            └── HubProtocolError               adapters.hub_client

Errors that also are a standard one keep it as a second base (`BadDocument` and the
ledger's parse errors are `ValueError`s), so code written against the standard type still
catches them. tests/test_layout.py holds every exception class of the project to this
drawing.
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
