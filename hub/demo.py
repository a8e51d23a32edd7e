"""`hub serve --demo`: institutions, types, grants and a few hundred documents for a look.

Ten county hospitals issue medical invoices under the bill codes assigned to them; the
provincial finance department issues non-tax revenue receipts; the medical-insurance
bureau settles a share of the invoices (医保结算单, each naming the invoice it settles).
The shipped types are registered first, so their `type` leaves open the log.
"""

from collections import defaultdict
from dataclasses import dataclass

from hub.documents.demo_data import DEMO_HOSPITALS, demo_invoices
from hub.documents.demo_types import (
    FINANCE_BUREAU,
    INSURANCE_BUREAU,
    demo_receipts,
    demo_settlements,
)
from hub.documents.invoice import INVOICE_TYPE, invoice_document_id
from hub.documents.registry import register_shipped
from hub.documents.service import DocumentInput
from hub.institutions import add_institution, list_institutions
from hub.services import Hub

DEMO_INVOICES = 300
DEMO_RECEIPTS = 40
# Every n-th invoice is settled by the medical-insurance bureau.
SETTLED_EVERY = 5
AGENCIES = (
    (INSURANCE_BUREAU[0], "Hainan Provincial Medical Insurance Bureau"),
    (FINANCE_BUREAU[0], "Hainan Provincial Department of Finance"),
    ("tax-bureau", "Hainan Provincial Tax Service"),
    ("commercial-insurer", "Hainan Huimin Commercial Health Insurance"),
)
AGENCY_KINDS = {
    INSURANCE_BUREAU[0]: INSURANCE_BUREAU[2],
    FINANCE_BUREAU[0]: FINANCE_BUREAU[2],
    "tax-bureau": "agency",
    "commercial-insurer": "insurer",
}
# The tax bureau deliberately has no grant: its demo token shows default deny.
DEMO_GRANTS = (
    (INSURANCE_BUREAU[0], INVOICE_TYPE, "full", "reimbursement review"),
    (FINANCE_BUREAU[0], INVOICE_TYPE, "financial", "e-bill supervision"),
    (FINANCE_BUREAU[0], "insurance_settlement", "summary", "fund supervision"),
)
# Agencies whose grant also lets them book reimbursement claims (hub/claims), with its view.
CLAIMING = ("medical-insurance-bureau", "commercial-insurer")
DEMO_CLAIMS_GRANTS = (
    ("commercial-insurer", INVOICE_TYPE, "financial", "supplementary health insurance"),
)


@dataclass(frozen=True)
class DemoSeed:
    hospital: str
    patient: str  # its patient number at `hospital` (a patient token's inst is `hospital`)
    invoice_codes: tuple[str, str, str]  # billCode, billNumber, checkCode
    created: bool
    receipt_codes: tuple[str, str, str] = ("", "", "")  # type, id, checkCode


async def seed_demo(hub: Hub) -> DemoSeed:
    """Seed once; a second run finds the institutions and only reports what is there."""
    invoices = demo_invoices(DEMO_INVOICES, seed=0)
    receipts = demo_receipts(DEMO_RECEIPTS, seed=0)
    first = invoices[0]
    by_code = {h.bill_code: h for h in DEMO_HOSPITALS}
    seed = DemoSeed(
        hospital=by_code[first["billCode"]].id,
        patient=first["patientRef"],
        invoice_codes=(first["billCode"], first["billNumber"], first["checkCode"]),
        created=False,
        receipt_codes=(
            "fiscal_receipt",
            f"{receipts[0]['billCode']}-{receipts[0]['billNumber']}",
            receipts[0]["checkCode"],
        ),
    )
    if await list_institutions(hub.db):
        return seed
    await register_shipped(hub.types, hub.sequencer)
    for hospital in DEMO_HOSPITALS:
        await add_institution(
            hub.db, hospital.id, hospital.name, "hospital", bill_codes=[hospital.bill_code]
        )
    for agency_id, name in AGENCIES:
        await add_institution(hub.db, agency_id, name, AGENCY_KINDS[agency_id])
    await _seed_grants(hub)
    per_issuer: dict[str, list[DocumentInput]] = defaultdict(list)
    for body in invoices:
        issuer = by_code[body["billCode"]].id
        per_issuer[issuer].append(
            DocumentInput(type=INVOICE_TYPE, id=invoice_document_id(body), body=body)
        )
    for issuer, docs in per_issuer.items():
        await hub.documents.submit(issuer, docs)
    await hub.documents.submit(
        FINANCE_BUREAU[0],
        [
            DocumentInput("fiscal_receipt", f"{r['billCode']}-{r['billNumber']}", r)
            for r in receipts
        ],
    )
    settled = [(by_code[b["billCode"]].id, b) for b in invoices[::SETTLED_EVERY]]
    await hub.documents.submit(
        INSURANCE_BUREAU[0],
        [
            DocumentInput("insurance_settlement", s["settlementNumber"], s)
            for s in demo_settlements(settled, seed=0)
        ],
    )
    from hub.claims.demo import seed_claims

    await seed_claims(hub, {h.bill_code: h.id for h in DEMO_HOSPITALS}, invoices, CLAIMING)
    return DemoSeed(seed.hospital, seed.patient, seed.invoice_codes, True, seed.receipt_codes)


async def _seed_grants(hub: Hub) -> None:
    from hub.access.grants import add_grant

    for agency, doc_type, view, purpose in DEMO_GRANTS + DEMO_CLAIMS_GRANTS:
        await add_grant(
            hub,
            agency=agency,
            type=doc_type,
            issuers=["*"],
            view=view,
            purpose=purpose,
            until=None,
            claims=agency in CLAIMING,
        )
