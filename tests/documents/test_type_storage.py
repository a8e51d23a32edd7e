"""Registered types in the database: `hub ledger verify` holds them to their leaves, and a
database made before types existed migrates with its hospitals' bill codes bound."""

from datetime import UTC, datetime

import pytest
from tortoise.migrations.api import migrate as run_migrations

from hub.audit import verify_ledger
from hub.documents.demo_data import demo_invoices
from hub.documents.registry import register_shipped, register_type
from hub.documents.service import CREATED, REJECTED, DocumentInput
from hub.errors import LedgerCorrupt
from hub.institutions import add_institution
from hub.services import Hub
from hub.store.db import Database, migrate, tortoise_config
from tests.documents.test_types import certificate


async def test_shipped_types_register_once_and_verify(hub: Hub) -> None:
    await register_shipped(hub.types, hub.sequencer)
    await register_shipped(hub.types, hub.sequencer)  # a second start adds nothing
    rows = await hub.db.sql.fetch("SELECT name, leaf_index FROM document_types ORDER BY leaf_index")
    assert [tuple(r) for r in rows] == [
        ("medical_invoice", 0),
        ("fiscal_receipt", 1),
        ("insurance_settlement", 2),
    ]
    report = await verify_ledger(hub.db, hub.signer.verifier, hub.settings.origin)
    assert report.rows["document_types"] == 3


@pytest.mark.parametrize(
    ("statement", "named"),
    [
        (
            "UPDATE document_types SET definition = replace(definition, 'school', 'hospital')",
            "document_types row id=1: definition does not match its digest",
        ),
        (
            "UPDATE document_types SET version = 7",
            "document_types row id=1: does not match its leaf",
        ),
        ("UPDATE document_types SET name = 'diploma'", "document_types row id=1: does not match"),
    ],
)
async def test_ledger_verify_names_a_tampered_type_row_or_definition(
    hub: Hub, statement: str, named: str
) -> None:
    await register_type(hub.types, hub.sequencer, certificate())
    await verify_ledger(hub.db, hub.signer.verifier, hub.settings.origin)
    await hub.db.sql.execute(statement)
    with pytest.raises(LedgerCorrupt, match=named):
        await verify_ledger(hub.db, hub.signer.verifier, hub.settings.origin)


async def test_a_database_made_before_types_keeps_its_hospitals_bill_codes(
    database_url: str, tmp_path: object
) -> None:
    await run_migrations(config=tortoise_config(database_url), target="models.0001_initial")
    from tortoise import connections

    await connections.close_all()
    invoice = demo_invoices(1, seed=30)[0]
    old = Database(database_url)
    await old.open()
    try:
        now = datetime.now(UTC)
        for inst in ("hosp-old", "hosp-new"):
            await old.sql.execute(
                "INSERT INTO institutions (id, name, kind, signatures_required, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [inst, inst, "hospital", False, now],
            )
        await old.sql.execute(
            "INSERT INTO documents (issuer, type, doc_id, version, status, subject, body, salt,"
            " digest, issued_at, leaf_index, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                "hosp-old",
                "medical_invoice",
                f"{invoice['billCode']}-{invoice['billNumber']}",
                1,
                "issued",
                invoice["patientRef"],
                "{}",
                b"\0" * 32,
                b"\1" * 32,
                invoice["issuedAt"],
                0,
                now,
            ],
        )
    finally:
        await old.close()
    await migrate(database_url)
    migrated = Database(database_url)
    await migrated.open()
    try:
        rows = await migrated.sql.fetch("SELECT code, institution, assigned FROM bill_codes")
        assert [(r[0], r[1], bool(r[2])) for r in rows] == [
            (invoice["billCode"], "hosp-old", False)
        ]
        versions = await migrated.sql.fetch("SELECT type_version FROM documents")
        assert [int(r[0]) for r in versions] == [1]
    finally:
        await migrated.close()


async def test_an_agency_of_a_listed_kind_issues_its_type(hub: Hub) -> None:
    from hub.documents.demo_types import demo_receipts

    await add_institution(hub.db, "fin", "Finance", "finance_bureau")
    await add_institution(hub.db, "h", "Hospital", "hospital")
    receipt = demo_receipts(1)[0]
    doc = DocumentInput("fiscal_receipt", f"{receipt['billCode']}-{receipt['billNumber']}", receipt)
    (made,), _ = await hub.documents.submit("fin", [doc])
    assert made.status == CREATED
    (refused,), _ = await hub.documents.submit("h", [doc])
    assert refused.status == REJECTED and refused.error is not None
    assert refused.error.code == "FORBIDDEN" and "finance_bureau" in refused.error.message


async def test_a_registration_counts_at_once_on_every_hub_process(hub: Hub) -> None:
    other = await Hub.start(hub.settings, run_migrations=False)  # a second process's view
    try:
        assert other.types.latest("school_certificate") is None
        await add_institution(hub.db, "school-1", "School", "school")
        await register_type(hub.types, hub.sequencer, certificate())
        body = {
            "number": "000001",
            "issuedAt": "2026-06-30T09:00:00+08:00",
            "studentRef": "S-1",
            "grades": [],
        }
        (made,), _ = await other.documents.submit(
            "school-1", [DocumentInput("school_certificate", "000001", body)]
        )
        assert made.status == CREATED
    finally:
        await other.stop()
