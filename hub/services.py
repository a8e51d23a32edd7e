"""The running hub's parts, built once from Settings and shared by HTTP, GraphQL and CLI."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hub.config import Settings
from hub.documents.registry import Registry, registry_for
from hub.documents.service import DocumentService
from hub.errors import ConfigError
from hub.keys import load_log_signer
from hub.ledger.note import Signer, format_verifier_key
from hub.ledger.policy import Policy, parse_policy
from hub.ledger.sequencer import GroupResult, Portable, Sequencer, append_group
from hub.ledger.storage import TileReader
from hub.store.db import Database, migrate
from hub.store.sql import Sql
from hub.store.sqlite_integrator import AVAILABLE as INTEGRATOR_AVAILABLE
from hub.store.sqlite_integrator import GroupWork, SqliteIntegrator
from hub.witness.submitter import Witnessing


def load_policy(path: Path) -> Policy:
    """The HUB_WITNESS_POLICY file, parsed; ConfigError naming what is wrong."""
    try:
        return parse_policy(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"HUB_WITNESS_POLICY: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"HUB_WITNESS_POLICY: {path}: {exc}") from None


@dataclass
class Hub:
    settings: Settings
    db: Database
    signer: Signer
    sequencer: Sequencer
    documents: DocumentService
    tiles: TileReader
    extras: dict[str, object] = field(default_factory=dict)
    # Set when HUB_WITNESS_POLICY names witnesses (hub.witness.submitter.Witnessing).
    witnesses: Witnessing | None = None

    @property
    def policy(self) -> Policy | None:
        return self.witnesses.policy if self.witnesses is not None else None

    @property
    def types(self) -> Registry:
        """The document types this process knows (refresh() takes in new registrations)."""
        return registry_for(self.db)

    @property
    def verifier_key(self) -> str:
        return format_verifier_key(self.signer.verifier)

    @classmethod
    async def start(cls, settings: Settings, *, run_migrations: bool = True) -> "Hub":
        """Open the database (migrating it first) and sign the empty tree if the log is new."""
        if run_migrations:
            await migrate(settings.database_url)
        signer = load_log_signer(settings.log_key_path)
        db = Database(settings.database_url)
        await db.open()
        # Elsewhere (PostgreSQL, an in-memory SQLite, a system without memfd, "inline")
        # the transaction runs as Database.write_transaction puts it.
        path = db.sqlite_file
        integrator = (
            ledger_integrator(path, settings.log_key_path, settings.origin)
            if path is not None and INTEGRATOR_AVAILABLE and settings.sqlite_integrator == "process"
            else None
        )
        sequencer = Sequencer(db, signer, settings.origin, integrator=integrator)
        await sequencer.ensure_head()
        tiles = TileReader(db.reader)
        witnesses = None
        if settings.witness_policy is not None:
            policy = load_policy(settings.witness_policy)
            witnesses = Witnessing(db, tiles, policy)
            sequencer.observer = witnesses.wake
        return cls(
            settings=settings,
            db=db,
            signer=signer,
            sequencer=sequencer,
            documents=DocumentService(db, sequencer),
            tiles=tiles,
            witnesses=witnesses,
        )

    async def stop(self) -> None:
        if self.witnesses is not None:
            await self.witnesses.stop()
        if self.sequencer.integrator is not None:
            await self.sequencer.integrator.close()
        await self.db.close()


def ledger_integrator(path: Path, key_path: Path, origin: str) -> SqliteIntegrator:
    """A SQLite integrator child for the ledger of the file `path`."""
    return SqliteIntegrator(path, f"{__name__}:integrating_work", str(key_path), origin)


def integrating_work(key_path: str, origin: str) -> GroupWork:
    """What the integrator child runs for each group (in the child: it loads the log's
    key there): the ledger's `append_group`, and each submission's outcome to carry back."""
    signer = load_log_signer(Path(key_path))

    async def work(sql: Sql, submissions: Sequence[Portable]) -> tuple[GroupResult, list[object]]:
        result = await append_group(sql, signer, origin, submissions)
        return result, [s.outcome() for s in submissions]

    return work
