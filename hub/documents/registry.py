"""The type registry: registered definitions, their `type` leaves, and each process's cache.

A registration is a sequencer submission, so its row and its `type` leaf are written in
one integrating transaction, and whether it may follow the version before is decided under
the ledger lock. Each process keeps the definitions it has read, compiled; `refresh` reads
only what was registered since (one indexed read), so a registration anywhere takes effect
at the next submission on every process.

The definitions shipped with the hub (`definitions/`) are part of its code: every hub
knows them, publishes them on GET /types and validates by them before any registration,
and a fresh log holds no leaf it did not ask for. `register_shipped` (`make run` does, or
`hub type add` of the file) anchors them as `type` leaves; a registered version replaces
the built-in one of its name.
"""

import json
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from hub.documents.canonical import type_leaf_data
from hub.documents.compat import check_successor
from hub.documents.types import DocumentType, parse_definition
from hub.errors import BadInput, Conflict, HubError
from hub.ledger.sequencer import Sequencer, Staged
from hub.store.db import Database, Sql

__all__ = [
    "SHIPPED",
    "Registry",
    "register_shipped",
    "register_type",
    "registry_for",
    "shipped_types",
]

DEFINITIONS = Path(__file__).parent / "definitions"
# Registered in this order by a new hub, so their leaves come first.
SHIPPED = ("medical_invoice", "fiscal_receipt", "insurance_settlement")

_INSERT = (
    "INSERT INTO document_types (name, version, definition, digest, leaf_index, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_COLUMNS = "name, version, definition, digest, leaf_index"
# The highest leaf index of a registration: a subquery a caller may fold into its own read.
NEWEST_TYPE = "SELECT MAX(leaf_index) FROM document_types"


@cache
def shipped_types() -> tuple[DocumentType, ...]:
    """The definitions shipped with the hub, parsed and compiled once per process."""
    return tuple(
        parse_definition(json.loads((DEFINITIONS / f"{name}.json").read_text(encoding="utf-8")))
        for name in SHIPPED
    )


def _from_row(row: Sequence[Any]) -> DocumentType:
    name, version, definition, digest, index = row
    parsed = parse_definition(json.loads(definition))
    if parsed.digest != bytes(digest) or (parsed.name, parsed.version) != (name, int(version)):
        # `hub ledger verify` names the row; a reader must not trust it meanwhile.
        raise HubError(f"document_types row {name} v{version} does not match its digest")
    return parsed.with_leaf(int(index))


class Registry:
    """Every known version of every type, by name, oldest version first."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._by_name: dict[str, list[DocumentType]] = {t.name: [t] for t in shipped_types()}
        self._seen = -1  # the highest leaf index of a registration already read

    def latest(self, name: str) -> DocumentType | None:
        versions = self._by_name.get(name)
        return versions[-1] if versions else None

    def version(self, name: str, version: int) -> DocumentType | None:
        for t in self._by_name.get(name, ()):
            if t.version == version:
                return t
        return None

    def all(self) -> list[DocumentType]:
        """Every version, by name then version."""
        return [t for name in sorted(self._by_name) for t in self._by_name[name]]

    def national(self) -> tuple[str, ...]:
        """Types whose subject is a national identifier (any issuer's documents)."""
        return tuple(name for name, versions in self._by_name.items() if versions[-1].national)

    async def refresh(self) -> "Registry":
        """Take in what was registered since the last look (on any process)."""
        rows = await self.db.fetch(NEWEST_TYPE)
        return await self.refresh_to(rows[0][0] if rows else None)

    async def refresh_to(self, newest: int | None) -> "Registry":
        """As `refresh`, given the highest leaf index in document_types (``NEWEST_TYPE``),
        which a caller may read along with something else."""
        if newest is None or int(newest) <= self._seen:
            return self
        found = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM document_types WHERE leaf_index > ? ORDER BY leaf_index",
            [self._seen],
        )
        for row in found:
            self._add(_from_row(row))
            self._seen = max(self._seen, int(row[4]))
        return self

    def _add(self, registered: DocumentType) -> None:
        versions = [
            t for t in self._by_name.get(registered.name, []) if t.version != registered.version
        ]
        versions.append(registered)
        versions.sort(key=lambda t: t.version)
        self._by_name[registered.name] = versions


_REGISTRIES: "weakref.WeakKeyDictionary[Database, Registry]" = weakref.WeakKeyDictionary()


def registry_for(db: Database) -> Registry:
    """The one registry of a database in this process (every service shares its cache)."""
    found = _REGISTRIES.get(db)
    if found is None:
        found = _REGISTRIES[db] = Registry(db)
    return found


@dataclass
class _Registration:
    """A sequencer submission: one definition's row and its `type` leaf, or nothing when
    the same definition is registered already."""

    canonical: bytes
    result: tuple[int, bool] | None = None  # (leaf index, newly registered)

    async def stage(self, sql: Sql, first_index: int, group: dict[str, Any]) -> Staged:
        new = parse_definition(json.loads(self.canonical))
        rows = await sql.fetch(
            f"SELECT {_COLUMNS} FROM document_types WHERE name = ? ORDER BY version", [new.name]
        )
        known = [(int(r[1]), str(r[2]), bytes(r[3]), int(r[4])) for r in rows]
        known += group.setdefault("types", {}).get(new.name, [])
        for _, _, digest, index in known:
            if digest == new.digest:
                self.result = (index, False)
                return Staged()
        if not known:
            # A shipped type counts as registered: another definition under its version, or
            # a next version that is not its successor, is refused as for a registered one.
            shipped = next((t for t in shipped_types() if t.name == new.name), None)
            if shipped is not None and shipped.digest != new.digest:
                known = [(shipped.version, shipped.canonical.decode(), shipped.digest, -1)]
        for version, *_ in known:
            if version == new.version:
                raise Conflict(
                    f"definition: {new.name} version {version} is registered with another"
                    f" definition; register version {max(v for v, *_ in known) + 1}"
                )
        latest = max(known, default=None)
        expected = latest[0] + 1 if latest else 1
        if new.version != expected:
            raise BadInput(f"definition: version: the next version of {new.name} is {expected}")
        if latest is not None:
            check_successor(parse_definition(json.loads(latest[1])), new)
        text = self.canonical.decode()
        group["types"].setdefault(new.name, []).append((new.version, text, new.digest, first_index))
        self.result = (first_index, True)
        leaf = type_leaf_data(name=new.name, version=new.version, digest=new.digest)
        row = (new.name, new.version, text, new.digest, first_index, datetime.now(UTC))
        return Staged(entries=[leaf], writes=[(_INSERT, [row])])

    def outcome(self) -> object:
        return self.result

    def absorb(self, outcome: object) -> None:
        assert outcome is None or isinstance(outcome, tuple)
        self.result = outcome


async def register_type(
    registry: Registry, sequencer: Sequencer, definition: object
) -> tuple[DocumentType, bool]:
    """Register a definition (checked first); the registered version and whether it is new.

    The same definition again is no new registration: it answers the one registered.
    """
    parsed = parse_definition(definition)
    registration = _Registration(parsed.canonical)
    await sequencer.submit(registration)
    assert registration.result is not None
    await registry.refresh()
    registered = registry.version(parsed.name, parsed.version)
    if registered is None or registered.digest != parsed.digest:
        registered = parsed.with_leaf(registration.result[0])
    return registered, registration.result[1]


async def register_shipped(registry: Registry, sequencer: Sequencer) -> None:
    """Register the shipped definitions a database does not hold yet.

    A database that holds another definition under a shipped version keeps it (an
    operator's later registration, or an older release's file): it is left alone.
    """
    await registry.refresh()
    for shipped in shipped_types():
        held = registry.version(shipped.name, shipped.version)
        if held is not None and held.leaf_index is not None:
            continue
        try:
            await register_type(registry, sequencer, shipped.definition)
        except (BadInput, Conflict):
            continue
