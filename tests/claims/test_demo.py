"""The demo (`make run`) has an insurer with a claims grant and claimed bills, the first
of them (the printed verify link's) claimed by two agencies."""

from hub.access.grants import list_grants
from hub.audit import verify_ledger
from hub.claims.store import claims_on, list_claims
from hub.demo import CLAIMING, seed_demo
from hub.documents.invoice import INVOICE_TYPE
from hub.services import Hub


async def test_the_demo_has_claimed_bills(hub: Hub) -> None:
    seed = await seed_demo(hub)
    grants = await list_grants(hub.db)
    assert {g.agency for g in grants if g.claims} == set(CLAIMING)
    claims = await list_claims(hub.db, limit=1000)
    assert len({c.doc_id for c in claims}) >= 10
    assert {c.agency for c in claims} == set(CLAIMING)
    code, number, _ = seed.invoice_codes
    first = await claims_on(hub.db, seed.hospital, INVOICE_TYPE, f"{code}-{number}")
    assert {c.agency for c in first} == set(CLAIMING)
    report = await verify_ledger(hub.db, hub.signer.verifier, hub.settings.origin)
    assert report.governance >= len(claims)
