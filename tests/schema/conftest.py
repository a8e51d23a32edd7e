"""A running hub with two hospitals, three agencies and invoices, behind the real app."""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.access.grants import create_grant
from hub.access.ratelimit import GuessLimiter, RateLimiter
from hub.app import create_app
from hub.auth.tokens import TokenIssuer, TokenSettings, kid_for, load_or_create_jwt_key
from hub.config import Settings
from hub.documents.demo_data import demo_invoices
from hub.documents.service import DocumentInput
from hub.institutions import add_institution
from hub.keys import create_log_key
from hub.services import Hub
from schema.context import Guards

ORIGIN = "test.example/log"
HOSP_A, HOSP_B = "hosp-a", "hosp-b"
AGENCY_FIN, AGENCY_SUM, AGENCY_FULL, AGENCY_NONE = "ag-fin", "ag-sum", "ag-full", "ag-none"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    hub: Hub
    client: httpx.AsyncClient
    issuer: TokenIssuer
    clock: Clock
    # Bodies by document id, per hospital.
    docs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def token(self, role: str, sub: str = "someone", inst: str | None = None) -> str:
        return self.issuer.issue(role=role, sub=sub, inst=inst)

    async def gql(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        response = await self.post(query, variables, token)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def post(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )


def code_of(result: dict[str, Any]) -> str | None:
    errors = result.get("errors")
    return errors[0]["extensions"]["code"] if errors else None


async def start_hub(database_url: str, tmp_path: Path, env: str = "dev") -> Hub:
    """A hub on `database_url` (migrated first), integrating inline: no child process."""
    key = tmp_path / "log.key"
    create_log_key(key, ORIGIN)
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        log_key_file=key,
        origin=ORIGIN,
        env=env,
        sqlite_integrator="inline",
    )
    return await Hub.start(settings)


def issuer_for(hub: Hub) -> TokenIssuer:
    s = hub.settings
    key = load_or_create_jwt_key(s.jwt_key_path)
    return TokenIssuer(key, kid_for(key.public_key()), TokenSettings(s.jwt_issuer, s.jwt_audience))


@pytest.fixture
async def world(migrated_url: str, tmp_path: Path) -> AsyncIterator[World]:
    hub = await start_hub(migrated_url, tmp_path)
    clock = Clock()
    hub.extras["graphql.guards"] = Guards(
        RateLimiter(1e6, 1e6, clock=clock), GuessLimiter(clock=clock)
    )
    try:
        for inst, kind in [
            (HOSP_A, "hospital"),
            (HOSP_B, "hospital"),
            (AGENCY_FIN, "agency"),
            (AGENCY_SUM, "agency"),
            (AGENCY_FULL, "agency"),
            (AGENCY_NONE, "agency"),
        ]:
            await add_institution(hub.db, inst, inst.upper(), kind)
        bodies = demo_invoices(8, seed=3)
        # Bill codes belong to one hospital: the second issues under codes of its own.
        bodies[5:] = [{**b, "billCode": "47" + b["billCode"][2:]} for b in bodies[5:]]
        docs: dict[str, list[dict[str, Any]]] = {}
        for hosp, part in [(HOSP_A, bodies[:5]), (HOSP_B, bodies[5:])]:
            inputs = [
                DocumentInput("medical_invoice", f"{b['billCode']}-{b['billNumber']}", b)
                for b in part
            ]
            results, _ = await hub.documents.submit(hosp, inputs)
            assert all(r.status == "CREATED" for r in results), results
            docs[hosp] = part
        for agency, view in [(AGENCY_FIN, "financial"), (AGENCY_SUM, "summary")]:
            await create_grant(
                hub,
                agency=agency,
                type="medical_invoice",
                issuers=[HOSP_A],
                view=view,
                purpose=f"{view} audit",
                until=None,
            )
        await create_grant(
            hub,
            agency=AGENCY_FULL,
            type="medical_invoice",
            issuers=["*"],
            view="full",
            purpose="insurance claims",
            until="2999-12-31",
        )
        app = create_app(hub=hub)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hub.test"
        ) as client:
            yield World(hub, client, issuer_for(hub), clock, docs)
    finally:
        await hub.stop()


def doc_id(body: dict[str, Any]) -> str:
    return f"{body['billCode']}-{body['billNumber']}"
