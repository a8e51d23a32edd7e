"""A running hub with a hospital, two insurers that may claim, a reader that may not, and
invoices whose claimable amounts the tests know, behind the real app."""

import copy
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.access.grants import create_grant
from hub.access.ratelimit import GuessLimiter, RateLimiter
from hub.app import create_app
from hub.documents.demo_data import demo_invoices
from hub.documents.service import DocumentInput
from hub.institutions import add_institution
from schema.context import Guards
from tests.schema.conftest import Clock, World, issuer_for, start_hub

HOSP = "hosp-a"
INSURER_A, INSURER_B, READER = "ins-a", "ins-b", "ag-read"

CLAIM = (
    "mutation($id: ID!, $amount: String!, $ref: String!, $version: Int) {"
    " claimDocument(documentId: $id, amount: $amount, reference: $ref, version: $version) {"
    " id documentId issuer version agency amount reference status at leafIndex salt } }"
)
RELEASE = (
    "mutation($id: ID!, $reason: String!) { releaseClaim(id: $id, reason: $reason) {"
    " id status amount releasedAt releaseLeafIndex } }"
)
DOCUMENT_CLAIMS = (
    "query($id: ID!) { document(id: $id) { claimableAmount claimedAmount"
    " claims { id agency amount reference status at } } }"
)


def doc_id(body: dict[str, Any]) -> str:
    return f"{body['billCode']}-{body['billNumber']}"


def claimable(body: dict[str, Any]) -> Decimal:
    # What the patient paid (DESIGN.md, "Document types"), computed here on its own.
    totals = body["totals"]
    return Decimal(totals["personalAccount"]) + Decimal(totals["personalCash"])


def reversal_of(body: dict[str, Any]) -> dict[str, Any]:
    reversed_body = copy.deepcopy(body)
    reversed_body["status"] = "reversed"
    return reversed_body


async def build_world(hub: Any, invoices: int = 6) -> list[dict[str, Any]]:
    await add_institution(hub.db, HOSP, "A County Hospital", "hospital")
    for agency in (INSURER_A, INSURER_B, READER):
        await add_institution(hub.db, agency, agency.upper(), "agency")
    bodies = [b for b in demo_invoices(40, seed=7) if claimable(b) >= Decimal("10.00")]
    bodies = bodies[:invoices]
    # One hospital issues them all (the bill codes of demo hospitals are not bound here).
    inputs = [DocumentInput("medical_invoice", doc_id(b), b) for b in bodies]
    results, _ = await hub.documents.submit(HOSP, inputs)
    assert all(r.status == "CREATED" for r in results), results
    for agency, view in ((INSURER_A, "full"), (INSURER_B, "financial")):
        await create_grant(
            hub,
            agency=agency,
            type="medical_invoice",
            issuers=["*"],
            view=view,
            purpose="reimbursement",
            until=None,
            claims=True,
        )
    await create_grant(
        hub,
        agency=READER,
        type="medical_invoice",
        issuers=[HOSP],
        view="financial",
        purpose="statistics",
        until=None,
    )
    return bodies


@pytest.fixture
async def claims_world(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    hub = await start_hub(database_url, tmp_path)
    clock = Clock()
    hub.extras["graphql.guards"] = Guards(
        RateLimiter(1e6, 1e6, clock=clock), GuessLimiter(clock=clock)
    )
    try:
        bodies = await build_world(hub)
        app = create_app(hub=hub)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hub.test"
        ) as client:
            yield World(hub, client, issuer_for(hub), clock, {HOSP: bodies})
    finally:
        await hub.stop()


def agency(world: World, inst: str) -> str:
    return world.token("agency", f"clerk@{inst}", inst)


def patient_of(world: World, body: dict[str, Any]) -> str:
    return world.token("patient", body["patientRef"], HOSP)


async def claim(
    world: World, token: str, body: dict[str, Any], amount: str, ref: str = "case-1"
) -> dict[str, Any]:
    return await world.gql(CLAIM, {"id": doc_id(body), "amount": amount, "ref": ref}, token)


SUBMIT = (
    "mutation($d: [DocumentInput!]!) { submitDocuments(documents: $d) {"
    " results { id status version error { code message } } } }"
)


def reversal_input(body: dict[str, Any], supersedes: int = 1) -> dict[str, Any]:
    return {
        "type": "medical_invoice",
        "id": doc_id(body),
        "body": reversal_of(body),
        "supersedes": supersedes,
    }
