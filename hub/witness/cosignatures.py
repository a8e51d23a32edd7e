"""The hub's record of its witnesses' cosignatures (table ``ledger_cosignatures``).

Every hub process reads the same rows, so ``/log/checkpoint`` serves one witnessed view
whichever replica answers, and a restart keeps what the witnesses already signed.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from hub.ledger.cosignature import Cosignature
from hub.ledger.policy import Policy
from hub.ledger.storage import SignedHead, read_checkpoint
from hub.store.db import Database, Sql


class Witnessed(Protocol):
    """What these reads need of a running hub (hub.services.Hub), named here so that the
    witness package does not import the composition that imports it."""

    @property
    def db(self) -> Database: ...

    @property
    def policy(self) -> Policy | None: ...


# How many of the newest sizes with enough cosignatures to look through for the quorum.
SCAN_SIZES = 64


@dataclass(frozen=True)
class StoredCosignature:
    size: int
    witness: str  # the witness's key name
    key_id: bytes
    at: int  # POSIX seconds
    line: str


async def store_cosignatures(db: Database, size: int, found: list[Cosignature]) -> None:
    async def work(sql: Sql) -> None:
        await sql.execute_many(
            "INSERT INTO ledger_cosignatures (size, witness, key_id, at, line)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (size, witness, key_id) DO NOTHING",
            [(size, c.witness.name, c.witness.key_id, c.timestamp, c.line) for c in found],
        )

    await db.write_transaction(work)


async def cosignatures_of(db: Database, size: int) -> list[StoredCosignature]:
    rows = await db.sql.fetch(
        "SELECT size, witness, key_id, at, line FROM ledger_cosignatures WHERE size = ?"
        " ORDER BY id",
        [size],
    )
    return [StoredCosignature(int(s), w, bytes(k), int(a), line) for s, w, k, a, line in rows]


async def newest_cosigned_by(db: Database, witness: str, key_id: bytes) -> int | None:
    rows = await db.sql.fetch(
        "SELECT MAX(size) FROM ledger_cosignatures WHERE witness = ? AND key_id = ?",
        [witness, key_id],
    )
    return int(rows[0][0]) if rows and rows[0][0] is not None else None


def _members(policy: Policy, cosigs: list[StoredCosignature]) -> list[str]:
    """The policy names of the witnesses whose stored cosignatures these are."""
    by_key = {(w.key.name, w.key.key_id): name for name, w in policy.witnesses.items()}
    return [n for c in cosigs if (n := by_key.get((c.witness, c.key_id))) is not None]


def with_cosignatures(head: SignedHead, cosigs: list[StoredCosignature]) -> SignedHead:
    """The checkpoint note with its cosignature lines appended, as verifiers read it."""
    return SignedHead(head.size, head.root, head.note + "".join(c.line for c in cosigs))


async def newest_witnessed(db: Database, policy: Policy) -> SignedHead | None:
    """The newest checkpoint whose stored cosignatures meet the policy's quorum, cosigned."""
    if policy.quorum_met([]):
        head = await read_checkpoint(db)
        return head and with_cosignatures(head, await cosignatures_of(db, head.size))
    # Only sizes with enough cosignatures to possibly meet the quorum: with witnesses
    # down, the newest sizes carry too few, and the witnessed one may be far below them.
    rows = await db.sql.fetch(
        "SELECT size, witness, key_id, at, line FROM ledger_cosignatures WHERE size IN"
        " (SELECT size FROM ledger_cosignatures GROUP BY size HAVING COUNT(*) >= ?"
        " ORDER BY size DESC LIMIT ?) ORDER BY size DESC, id",
        [policy.fewest(), SCAN_SIZES],
    )
    by_size: dict[int, list[StoredCosignature]] = {}
    for s, w, k, a, line in rows:
        by_size.setdefault(int(s), []).append(StoredCosignature(int(s), w, bytes(k), int(a), line))
    for size, cosigs in by_size.items():
        if policy.quorum_met(_members(policy, cosigs)):
            head = await read_checkpoint(db, size)
            if head is not None:
                return with_cosignatures(head, cosigs)
    return None


def rfc3339(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


async def policy_cosignatures(hub: Witnessed, size: int) -> list[StoredCosignature]:
    """The stored cosignatures on checkpoint ``size`` by the hub's policy's witnesses."""
    policy = hub.policy
    if policy is None:
        return []
    known = {(w.key.name, w.key.key_id) for w in policy.witnesses.values()}
    return [c for c in await cosignatures_of(hub.db, size) if (c.witness, c.key_id) in known]


async def meets_quorum(hub: Witnessed, size: int) -> bool:
    policy = hub.policy
    if policy is None:
        return False
    return policy.quorum_met(_members(policy, await policy_cosignatures(hub, size)))


async def cosigned_note(hub: Witnessed, head: SignedHead) -> str:
    """``head``'s note with its stored cosignature lines (as is without a policy)."""
    if hub.policy is None:
        return head.note
    cosigs = await policy_cosignatures(hub, head.size)
    present = set(head.note.split("\n"))
    return head.note + "".join(c.line for c in cosigs if c.line[:-1] not in present)
