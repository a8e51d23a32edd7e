"""Per-request state: the hub, who is asking, and the request's DataLoaders."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from strawberry.dataloader import DataLoader

from hub.access.documents import DocRow
from hub.access.grants import Grant, active_grants
from hub.access.ratelimit import GuessLimiter, RateLimiter, Unlimited
from hub.access.visibility import Scope, scope_for
from hub.auth.principal import Principal
from hub.errors import Unauthenticated
from hub.institutions import InstitutionRecord
from hub.ledger.storage import SignedHead, read_checkpoint
from hub.services import Hub


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Guards:
    """Limiters shared by every request of one app (they are per process)."""

    requests: RateLimiter | Unlimited
    invoice_lookups: GuessLimiter


@dataclass
class Context:
    hub: Hub
    principal: Principal | None
    auth_error: Unauthenticated | None
    client: str
    guards: Guards
    # Looked up when called, so a test can move the clock (tokens expire, grants end).
    now: Callable[[], datetime] = lambda: utc_now()
    # A websocket's connection_init payload (strawberry sets it; it may carry the token).
    connection_params: dict[str, Any] | None = None
    # Rows a resolver handed out, by row key, so loaders can take keys that hash.
    rows: dict[int, DocRow] = field(default_factory=dict)
    # (row key, purpose) -> leaf index of the access leaf this request already anchored.
    reads_on_ledger: dict[tuple[int, str], int] = field(default_factory=dict)
    _scope: Scope | None = None
    # An agency's active grants, read once per operation (claims need more than the scope).
    grants: list[Grant] | None = None
    _head: SignedHead | None = None
    institutions: DataLoader[str, InstitutionRecord | None] = field(init=False)
    access: DataLoader[tuple[int, str], int] = field(init=False)
    # The executions run with this context, for release().
    executions: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        from schema.loaders import access_loader, institution_loader

        self.institutions = institution_loader(self)
        self.access = access_loader(self)

    @property
    def rate_key(self) -> str:
        """Whose rate limit a request counts against: the principal, else the address."""
        p = self.principal
        return f"ip:{self.client}" if p is None else f"{p.role}:{p.inst or ''}:{p.sub}"

    def begin_operation(self) -> None:
        """Forget what an earlier operation read. A websocket keeps one context for its
        life: without this a grant revoked meanwhile would still apply, the checkpoint
        would stay old, a second read of a body would anchor no access leaf, and a token
        that expired since the connection opened would still hold."""
        if self.principal is not None and self.principal.expired(self.now()):
            self.principal, self.auth_error = None, Unauthenticated("token has expired")
        self._scope = None
        self.grants = None
        self._head = None
        self.rows = {}
        self.reads_on_ledger = {}
        self.executions = []
        self.__post_init__()

    def release(self) -> None:
        """Break the reference cycles a finished request leaves, so that its objects go
        by reference counts rather than by the cyclic collector: each loader's function
        holds this context, and graphql-core's executor holds itself through its async
        helpers. Under proof load the collector otherwise took ~7% of the loop, walking
        ~50,000 such objects a pass. Only once no operation runs on this context."""
        for execution in self.executions:
            execution.async_helpers = None
        self.executions = []
        del self.institutions, self.access

    async def scope(self) -> Scope:
        """The documents the principal may read (grants are read once per request)."""
        if self._scope is None:
            national: tuple[str, ...] = ()
            issuer = False
            p = self.principal
            grants = await self.agency_grants()
            if p is not None and p.role == "agency" and p.inst is not None:
                record = await self.institutions.load(p.inst)
                kinds = {k for t in self.hub.types.all() for k in t.issuer_kinds}
                issuer = record is not None and record.kind in kinds
            if p is not None and p.role == "patient" and p.inst is None:
                national = (await self.hub.types.refresh()).national()
            self._scope = scope_for(p, grants, national, issuer)
        return self._scope

    async def agency_grants(self) -> list[Grant]:
        """The agency's active grants (read once per operation); none for other roles."""
        if self.grants is None:
            self.grants = []
            p = self.principal
            if p is not None and p.role == "agency" and p.inst is not None:
                self.grants = await active_grants(self.hub.db, p.inst, self.now())
        return self.grants

    async def head(self, size: int | None = None, covering: int = -1) -> SignedHead | None:
        """The latest signed checkpoint (read once per request), or the one of ``size``.

        With ``covering``, one that includes that leaf: a leaf this request anchored (a
        body read's access leaf) is newer than the checkpoint read before it."""
        if size is not None:
            return await read_checkpoint(self.hub.db, size)
        if self._head is None or self._head.size <= covering:
            self._head = await read_checkpoint(self.hub.db)
        return self._head
