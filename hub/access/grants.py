"""Grants: an agency may read documents of one type from some issuers, in one view.

A grant is valid from its creation until ``valid_until`` (exclusive; a bare date means
the whole of that day in UTC is included) unless revoked earlier. Creating and revoking
a grant each append a ``grant`` leaf in the same transaction as the row change, so the
governance of the data is in the ledger next to the data.
"""

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from hub.documents.canonical import grant_leaf_data, is_date, is_timestamp
from hub.documents.registry import registry_for
from hub.documents.types import TYPE_NAME
from hub.errors import BadInput, Conflict, NotFound
from hub.ledger.sequencer import Staged
from hub.store.db import Database, Sql

if TYPE_CHECKING:
    from hub.services import Hub

ALL_ISSUERS = "*"
_COLUMNS = (
    "id, agency, type, issuers, view, purpose, valid_from, valid_until, revoked_at, leaf_index,"
    " claims"
)
_INSERT = f"INSERT INTO grants ({_COLUMNS}, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


@dataclass(frozen=True)
class Grant:
    id: str
    agency: str
    type: str
    issuers: tuple[str, ...]
    view: str
    purpose: str
    valid_from: str
    valid_until: str | None
    revoked_at: str | None
    leaf_index: int
    claims: bool = False  # may book reimbursement claims (hub/claims)

    def active(self, now: datetime) -> bool:
        if self.revoked_at is not None:
            return False
        if now < parse_instant(self.valid_from):
            return False
        return self.valid_until is None or now < parse_instant(self.valid_until, end_of_day=True)

    def covers(self, issuer: str, doc_type: str) -> bool:
        return doc_type == self.type and (ALL_ISSUERS in self.issuers or issuer in self.issuers)


def timestamp(now: datetime) -> str:
    """The UTC timestamp text used in leaves and grant rows."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(text: str, *, end_of_day: bool = False) -> datetime:
    """A date or ISO timestamp as an aware datetime; a date is its UTC midnight.

    With ``end_of_day`` a bare date means the midnight after it, so that "until
    2026-12-31" includes the 31st.
    """
    if is_date(text):
        day = datetime.fromisoformat(text).replace(tzinfo=UTC)
        return day + timedelta(days=1) if end_of_day else day
    return datetime.fromisoformat(text)


def _row(row: Sequence[Any]) -> Grant:
    gid, agency, doc_type, issuers, view, purpose, since, until, revoked, index, claims = row
    listed = json.loads(issuers) if isinstance(issuers, str | bytes) else issuers
    return Grant(
        gid,
        agency,
        doc_type,
        tuple(listed),
        view,
        purpose,
        since,
        until,
        revoked,
        int(index),
        bool(claims),
    )


async def list_grants(db: Database | Sql, agency: str | None = None) -> list[Grant]:
    query, params = f"SELECT {_COLUMNS} FROM grants", []
    if agency is not None:
        query, params = query + " WHERE agency = ?", [agency]
    query += " ORDER BY created_at, id"
    # Every agency request reads its grants: off the writer's connection (Database.fetch).
    rows = await db.fetch(query, params)
    return [_row(r) for r in rows]


async def active_grants(db: Database, agency: str, now: datetime) -> list[Grant]:
    return [g for g in await list_grants(db, agency) if g.active(now)]


@dataclass
class _GrantChange:
    """A sequencer submission: one grant row change and its `grant` leaf."""

    grant: Grant
    action: str
    at: str
    result: Grant | None = None

    async def stage(self, sql: Sql, first_index: int, group: dict[str, Any]) -> Staged:
        g = self.grant
        data = grant_leaf_data(
            id=g.id,
            agency=g.agency,
            type=g.type,
            issuers=list(g.issuers),
            view=g.view,
            purpose=g.purpose,
            valid_from=g.valid_from,
            valid_until=g.valid_until,
            action=self.action,
            at=self.at,
            claims=g.claims,
        )
        if self.action == "create":
            self.result = Grant(**{**g.__dict__, "leaf_index": first_index})
            row = (
                g.id,
                g.agency,
                g.type,
                json.dumps(list(g.issuers), separators=(",", ":")),
                g.view,
                g.purpose,
                g.valid_from,
                g.valid_until,
                None,
                first_index,
                g.claims,
                datetime.now(UTC),
            )
            return Staged(entries=[data], writes=[(_INSERT, [row])])
        # Decided under the ledger lock, so two revocations cannot both append a leaf.
        rows = await sql.fetch("SELECT revoked_at FROM grants WHERE id = ?", [g.id])
        if not rows:
            raise NotFound("no such grant")
        if rows[0][0] is not None:
            raise Conflict("the grant is already revoked")
        self.result = Grant(**{**g.__dict__, "revoked_at": self.at})
        update = "UPDATE grants SET revoked_at = ? WHERE id = ?"
        return Staged(entries=[data], writes=[(update, [(self.at, g.id)])])

    def outcome(self) -> object:
        return self.result

    def absorb(self, outcome: object) -> None:
        assert outcome is None or isinstance(outcome, Grant)
        self.result = outcome


async def _institution_kind(db: Database, inst: str) -> str | None:
    rows = await db.sql.fetch("SELECT kind FROM institutions WHERE id = ?", [inst])
    return str(rows[0][0]) if rows else None


async def create_grant(
    hub: "Hub",
    *,
    agency: str,
    type: str,
    issuers: Sequence[str],
    view: str,
    purpose: str,
    until: str | None,
    now: datetime | None = None,
    claims: bool = False,
) -> Grant:
    """Validate, store and anchor a new grant; BadInput names the first bad argument."""
    now = now or datetime.now(UTC)
    kind = await _institution_kind(hub.db, agency)
    if kind is None or kind == "hospital":
        raise BadInput(f"agency: {agency} is not a registered agency")
    if not isinstance(type, str) or not TYPE_NAME.fullmatch(type):
        raise BadInput("type: must be a document type name such as medical_invoice")
    doc_type = (await registry_for(hub.db).refresh()).latest(type)
    if doc_type is None:
        raise BadInput(f"type: no document type {type} is registered")
    listed = [i.strip() for i in issuers if i.strip()]
    if not listed:
        raise BadInput("issuers: name at least one issuer, or '*' for all")
    if ALL_ISSUERS in listed and len(listed) > 1:
        raise BadInput("issuers: '*' stands alone")
    if ALL_ISSUERS not in listed:
        for issuer in listed:
            if await _institution_kind(hub.db, issuer) not in doc_type.issuer_kinds:
                if doc_type.issuer_kinds == ("hospital",):
                    raise BadInput(f"issuers: {issuer} is not a registered hospital")
                raise BadInput(
                    f"issuers: {issuer} is not a registered institution that issues {type}"
                )
    if view not in doc_type.view_names:
        raise BadInput(f"view: must be one of {', '.join(doc_type.view_names)} (views of {type})")
    if not purpose or not purpose.strip() or len(purpose) > 200:
        raise BadInput("purpose: required, at most 200 characters")
    if until is not None:
        if not (is_date(until) or is_timestamp(until)):
            raise BadInput("until: must be a date YYYY-MM-DD or a timestamp with offset")
        if parse_instant(until, end_of_day=True) <= now:
            raise BadInput("until: must be in the future")
    grant = Grant(
        id=f"g_{secrets.token_hex(12)}",
        agency=agency,
        type=type,
        issuers=tuple(listed),
        view=view,
        purpose=purpose.strip(),
        valid_from=timestamp(now),
        valid_until=until,
        revoked_at=None,
        leaf_index=-1,
        claims=claims,
    )
    change = _GrantChange(grant, "create", timestamp(now))
    await hub.sequencer.submit(change)
    assert change.result is not None
    return change.result


async def add_grant(
    hub: "Hub",
    *,
    agency: str,
    type: str,
    issuers: list[str],
    view: str,
    purpose: str,
    until: str | None,
    claims: bool = False,
) -> str:
    """`hub grant add`: create a grant and return its id."""
    grant = await create_grant(
        hub,
        agency=agency,
        type=type,
        issuers=issuers,
        view=view,
        purpose=purpose,
        until=until,
        claims=claims,
    )
    return grant.id


async def revoke_grant(hub: "Hub", grant_id: str, now: datetime | None = None) -> Grant:
    """Revoke a grant at once; its revocation is a `grant` leaf."""
    rows = await hub.db.sql.fetch(f"SELECT {_COLUMNS} FROM grants WHERE id = ?", [grant_id])
    if not rows:
        raise NotFound("no such grant")
    change = _GrantChange(_row(rows[0]), "revoke", timestamp(now or datetime.now(UTC)))
    await hub.sequencer.submit(change)
    assert change.result is not None
    return change.result
