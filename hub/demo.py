"""`hub serve --demo`: institutions, grants and a few hundred invoices for a first look."""

from collections import defaultdict
from dataclasses import dataclass

from hub.documents.demo_data import DEMO_HOSPITALS, demo_invoices
from hub.documents.invoice import INVOICE_TYPE, invoice_document_id
from hub.documents.service import DocumentInput
from hub.institutions import add_institution, list_institutions
from hub.services import Hub

DEMO_INVOICES = 300
AGENCIES = (
    ("medical-insurance-bureau", "Hainan Provincial Medical Insurance Bureau"),
    ("finance-bureau", "Hainan Provincial Department of Finance"),
    ("tax-bureau", "Hainan Provincial Tax Service"),
    ("commercial-insurer", "Hainan Huimin Commercial Health Insurance"),
)
# The tax bureau deliberately has no grant: its demo token shows default deny.
DEMO_GRANTS = (
    ("medical-insurance-bureau", "full", "reimbursement review"),
    ("finance-bureau", "financial", "e-bill supervision"),
)
# Agencies whose grant also lets them book reimbursement claims (hub/claims), with its view.
CLAIMING = ("medical-insurance-bureau", "commercial-insurer")
DEMO_CLAIMS_GRANTS = (("commercial-insurer", "financial", "supplementary health insurance"),)


@dataclass(frozen=True)
class DemoSeed:
    hospital: str
    patient: str
    invoice_codes: tuple[str, str, str]  # billCode, billNumber, checkCode
    created: bool


async def seed_demo(hub: Hub) -> DemoSeed:
    """Seed once; a second run finds the institutions and only reports what is there."""
    invoices = demo_invoices(DEMO_INVOICES, seed=0)
    first = invoices[0]
    by_code = {h.bill_code: h for h in DEMO_HOSPITALS}
    seed = DemoSeed(
        hospital=by_code[first["billCode"]].id,
        patient=first["patientRef"],
        invoice_codes=(first["billCode"], first["billNumber"], first["checkCode"]),
        created=False,
    )
    if await list_institutions(hub.db):
        return seed
    for hospital in DEMO_HOSPITALS:
        await add_institution(hub.db, hospital.id, hospital.name, "hospital")
    for agency_id, name in AGENCIES:
        await add_institution(hub.db, agency_id, name, "agency")
    await _seed_grants(hub)
    per_issuer: dict[str, list[DocumentInput]] = defaultdict(list)
    for body in invoices:
        issuer = by_code[body["billCode"]].id
        per_issuer[issuer].append(
            DocumentInput(type=INVOICE_TYPE, id=invoice_document_id(body), body=body)
        )
    for issuer, docs in per_issuer.items():
        await hub.documents.submit(issuer, docs)
    from hub.claims.demo import seed_claims

    await seed_claims(hub, {h.bill_code: h.id for h in DEMO_HOSPITALS}, invoices, CLAIMING)
    return DemoSeed(seed.hospital, seed.patient, seed.invoice_codes, created=True)


async def _seed_grants(hub: Hub) -> None:
    try:
        from hub.access.grants import add_grant
    except ImportError:  # the access layer is optional until the gateway lands
        return
    for agency, view, purpose in DEMO_GRANTS + DEMO_CLAIMS_GRANTS:
        await add_grant(
            hub,
            agency=agency,
            type=INVOICE_TYPE,
            issuers=["*"],
            view=view,
            purpose=purpose,
            until=None,
            claims=agency in CLAIMING,
        )
