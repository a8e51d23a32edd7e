"""`hub ledger verify` holds grant and access rows to their leaves, not only documents."""

import pytest

from hub.access.access_log import record_reads
from hub.access.documents import with_id
from hub.access.grants import create_grant, revoke_grant
from hub.audit import verify_ledger
from hub.documents.demo_data import DEMO_HOSPITALS, demo_invoices
from hub.documents.invoice import INVOICE_TYPE, invoice_document_id
from hub.documents.service import DocumentInput
from hub.errors import LedgerCorrupt
from hub.institutions import add_institution
from hub.services import Hub


async def _governed_ledger(hub: Hub) -> str:
    by_code = {h.bill_code: h for h in DEMO_HOSPITALS}
    invoices = demo_invoices(6, seed=3)
    for h in {by_code[b["billCode"]] for b in invoices}:
        await add_institution(hub.db, h.id, h.name, "hospital")
    await add_institution(hub.db, "insurance", "Medical Insurance Bureau", "agency")
    grant = await create_grant(
        hub,
        agency="insurance",
        type=INVOICE_TYPE,
        issuers=["*"],
        view="full",
        purpose="reimbursement",
        until=None,
    )
    for body in invoices:
        issuer = by_code[body["billCode"]].id
        doc = DocumentInput(type=INVOICE_TYPE, id=invoice_document_id(body), body=body)
        await hub.documents.submit(issuer, [doc])
    rows = await with_id(hub.db, invoice_document_id(invoices[0]), INVOICE_TYPE)
    await record_reads(hub, "insurance", [(rows[-1], "reimbursement")])
    await revoke_grant(hub, grant.id)
    return grant.id


async def test_grant_and_access_rows_are_checked_against_their_leaves(hub: Hub) -> None:
    await _governed_ledger(hub)
    report = await verify_ledger(hub.db, hub.signer.verifier, hub.settings.origin)
    assert report.documents == 6
    assert report.governance == 2  # the grant's creation and the one read


@pytest.mark.parametrize(
    ("statement", "named"),
    [
        ("UPDATE grants SET view = 'financial'", "grants row id="),
        ("UPDATE access_events SET purpose = 'curiosity'", "access_events row id="),
    ],
)
async def test_a_changed_grant_or_access_row_is_named(hub: Hub, statement: str, named: str) -> None:
    await _governed_ledger(hub)
    await hub.db.sql.execute(statement)
    with pytest.raises(LedgerCorrupt, match=named):
        await verify_ledger(hub.db, hub.signer.verifier, hub.settings.origin)
