"""`bench/run.py --claims`: `claimDocument` over loopback HTTP, several clients, one worker.

One `hub serve` process (one uvicorn worker) on SQLite; agencies with claims grants book
small amounts against a few thousand invoices from wrk (or httpx) in another process.
Every claim is decided under the ledger lock and answered only after the signed
checkpoint that covers its `claim` leaf. Target: >= 1,000 claims/s.
"""

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.graphql import WRK_REPORT, _lua, start_server, stop_server
from bench.measure import progress

RESULT_MARK = "CLAIMS-RESULT "
TARGET = 1_000.0
AGENCIES = ("bench-bureau", "bench-insurer-1", "bench-insurer-2", "bench-employer")
AMOUNT = "0.01"  # small enough that no bill runs out during a run
CLAIM_QUERY = (
    "mutation($id: ID!, $a: String!, $r: String!) {"
    " claimDocument(documentId: $id, amount: $a, reference: $r) { id status leafIndex } }"
)


@dataclass(frozen=True)
class Plan:
    invoices: int = 2_000
    seconds: int = 15
    # Each claim waits for its group's commit; more clients in flight, bigger groups.
    connections: int = 64


QUICK = Plan(invoices=500, seconds=5, connections=64)


@dataclass
class World:
    url: str = ""
    tokens: list[str] = field(default_factory=list)
    doc_ids: list[str] = field(default_factory=list)


async def build(settings: Any, invoices: int) -> World:
    """A hospital, the agencies (each with a claims grant) and `invoices` claimable bills."""
    from hub.access.grants import add_grant
    from hub.cli import issue_token
    from hub.documents.demo_data import DEMO_HOSPITALS, demo_invoices
    from hub.documents.invoice import INVOICE_TYPE, invoice_document_id
    from hub.documents.service import DocumentInput
    from hub.institutions import add_institution
    from hub.keys import create_log_key
    from hub.services import Hub

    create_log_key(settings.log_key_path, settings.origin)
    hub = await Hub.start(settings)
    try:
        for hospital in DEMO_HOSPITALS:
            await add_institution(hub.db, hospital.id, hospital.name, "hospital")
        issuer = {h.bill_code: h.id for h in DEMO_HOSPITALS}
        for agency in AGENCIES:
            await add_institution(hub.db, agency, agency, "agency")
            await add_grant(
                hub,
                agency=agency,
                type=INVOICE_TYPE,
                issuers=["*"],
                view="summary",
                purpose="reimbursement",
                until=None,
                claims=True,
            )
        bodies = [
            b
            for b in demo_invoices(invoices * 3, seed=11)
            # What the patient paid is the invoice's claimable amount (DESIGN.md).
            if Decimal(b["totals"]["personalAccount"]) + Decimal(b["totals"]["personalCash"])
            >= Decimal("1.00")
        ][:invoices]
        per_issuer: dict[str, list[DocumentInput]] = {}
        for b in bodies:
            per_issuer.setdefault(issuer[b["billCode"]], []).append(
                DocumentInput(type=INVOICE_TYPE, id=invoice_document_id(b), body=b)
            )
        ids: list[str] = []
        for hospital_id, docs in per_issuer.items():
            results, _ = await hub.documents.submit(hospital_id, docs)
            ids += [r.id for r in results if r.status == "CREATED"]
    finally:
        await hub.stop()
    return World(
        tokens=[issue_token(settings, "agency", f"bench@{a}", a, 86400) for a in AGENCIES],
        doc_ids=ids,
    )


_WRK_SCRIPT = (
    """
local tokens = {%(tokens)s}
local ids = {%(ids)s}
local query = %(query)s
local requests = {}
for i, id in ipairs(ids) do
  for j, token in ipairs(tokens) do
    local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}
    local variables = '{"id":"' .. id .. '","a":"%(amount)s","r":"case-' .. i .. '"}'
    local body = '{"query":"' .. query .. '","variables":' .. variables .. '}'
    table.insert(requests, {headers, body})
  end
end
bad = 0
math.randomseed(1616)
request = function()
  local r = requests[math.random(#requests)]
  return wrk.format("POST", "/graphql", r[1], r[2])
end
"""
    + WRK_REPORT
)


def load_wrk(world: World, workdir: Path, plan: Plan) -> dict[str, Any]:
    script = workdir / "claims.lua"
    script.write_text(
        _WRK_SCRIPT
        % {
            "tokens": ",".join(_lua(t) for t in world.tokens),
            "ids": ",".join(_lua(i) for i in world.doc_ids),
            "query": _lua(json.dumps(CLAIM_QUERY)[1:-1]),
            "amount": AMOUNT,
        }
    )
    cmd = ["wrk", "-t1", f"-c{plan.connections}", f"-d{plan.seconds}s", "-s", str(script)]
    out = subprocess.run([*cmd, world.url], capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK "))
    requests, errors, micros, p50, p99 = (float(x) for x in line.split()[1:])
    return {
        "claims_per_s": (requests - errors) / (micros / 1e6),
        "requests": int(requests),
        "errors": int(errors),
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
        "generator": f"wrk -t1 -c{plan.connections}",
    }


async def load_httpx(world: World, plan: Plan) -> dict[str, Any]:
    import random

    import httpx

    limits = httpx.Limits(max_connections=plan.connections)
    rng = random.Random(1616)
    ok = errors = 0
    async with httpx.AsyncClient(base_url=world.url, limits=limits, timeout=30) as client:
        deadline = time.perf_counter() + plan.seconds

        async def worker() -> None:
            nonlocal ok, errors
            while time.perf_counter() < deadline:
                token = rng.choice(world.tokens)
                doc = rng.choice(world.doc_ids)
                answer = await client.post(
                    "/graphql",
                    json={"query": CLAIM_QUERY, "variables": {"id": doc, "a": AMOUNT, "r": "case"}},
                    headers={"Authorization": f"Bearer {token}"},
                )
                if answer.status_code == 200 and "errors" not in answer.json():
                    ok += 1
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(plan.connections)))
        elapsed = time.perf_counter() - started
    return {
        "claims_per_s": ok / elapsed,
        "requests": ok + errors,
        "errors": errors,
        "generator": f"httpx x{plan.connections} (client-bound: install wrk for the real figure)",
    }


async def check_acknowledgement(world: World) -> dict[str, Any]:
    """One claim: its answer comes with a leaf index that a signed checkpoint already covers."""
    import httpx

    async with httpx.AsyncClient(base_url=world.url, timeout=30) as client:
        answer = await client.post(
            "/graphql",
            json={
                "query": CLAIM_QUERY,
                "variables": {"id": world.doc_ids[0], "a": AMOUNT, "r": "check"},
            },
            headers={"Authorization": f"Bearer {world.tokens[0]}"},
        )
        claim = answer.json()["data"]["claimDocument"]
        head = await client.post("/graphql", json={"query": "{ checkpoint { treeSize } }"})
        size = head.json()["data"]["checkpoint"]["treeSize"]
    assert claim["status"] == "ACTIVE" and claim["leafIndex"] < size, (claim, size)
    return {"leaf_index": claim["leafIndex"], "tree_size_after": size}


async def audit(url: str, settings: Any) -> dict[str, Any]:
    """How many claims are stored, and `hub ledger verify` over the whole ledger."""
    from hub.audit import verify_ledger
    from hub.keys import load_log_signer
    from hub.store.db import Database

    db = Database(url)
    await db.open()
    try:
        rows = await db.sql.fetch("SELECT COUNT(*) FROM claims")
        signer = load_log_signer(settings.log_key_path)
        report = await verify_ledger(db, signer.verifier, settings.origin)
    finally:
        await db.close()
    return {"stored": int(rows[0][0]), "leaves": report.size}


def measure(workdir: Path, plan: Plan) -> dict[str, Any]:
    from hub.config import Settings

    url = f"sqlite://{workdir}/hub.db"
    env = {
        **os.environ,
        "HUB_DATABASE_URL": url,
        "HUB_DATA_DIR": str(workdir / "var"),
        "HUB_RATE_LIMIT": "0",
        "HUB_ENV": "dev",
    }
    settings = Settings.from_env(env)
    world = asyncio.run(build(settings, plan.invoices))
    progress(f"    {len(world.doc_ids):,} claimable invoices, {len(AGENCIES)} agencies")
    proc, world.url = start_server(env, workdir)
    try:
        acknowledged = asyncio.run(check_acknowledgement(world))
        if shutil.which("wrk"):
            result = load_wrk(world, workdir, plan)
        else:
            progress("    (wrk not installed: apt-get install wrk; httpx is client-bound)")
            result = asyncio.run(load_httpx(world, plan))
    finally:
        stop_server(proc)
    result["acknowledgement"] = acknowledged
    result["audit"] = asyncio.run(audit(url, settings))
    result["load_average"] = round(os.getloadavg()[0], 2)
    progress(
        f"    {result['claims_per_s']:,.0f} claims/s ({result['requests']:,} requests,"
        f" {result['errors']} refused or failed; {result['audit']['stored']:,} stored,"
        " ledger verified)"
    )
    return result


def run(quick: bool, out: Path) -> int:
    plan = QUICK if quick else Plan()
    with tempfile.TemporaryDirectory(prefix="hub-claims-bench-") as tmp:
        progress("claimDocument over HTTP, SQLite, one worker")
        result = measure(Path(tmp), plan)
    status = "PASS" if result["claims_per_s"] >= TARGET else "MISS"
    print(
        f"claimDocument over loopback HTTP, one uvicorn worker, {os.cpu_count()} CPUs "
        f"(the load generator shares them), load average {result['load_average']}"
    )
    print(f"  claims/s: {result['claims_per_s']:,.0f} (target >= {TARGET:,.0f}) {status}")
    out.mkdir(parents=True, exist_ok=True)
    data = {"sqlite": result, "target": TARGET, "status": status}
    (out / "claims.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    progress(f"wrote {out / 'claims.json'}")
    return 0 if status == "PASS" else 1


if __name__ == "__main__":
    sys.exit(run("--quick" in sys.argv, Path(__file__).resolve().parent / "out"))
