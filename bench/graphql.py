"""`bench/run.py --graphql`: the GraphQL gateway over loopback HTTP on a 1,000,000-entry ledger.

One `hub serve` process (one uvicorn worker) serves a freshly built ledger; load comes from
other processes: wrk (Debian's `wrk`, a Lua script for the POST bodies) when installed,
otherwise an httpx client. Three figures, each against its issue-3 target:

- `inclusionProof(documentId)` + `checkpoint` in one request: requests/s (>= 2,000);
- `submitDocuments`, batches of 100 invoices, concurrent clients: documents/s, each batch
  answered only after its signed checkpoint (>= 10,000 SQLite, >= 5,000 PostgreSQL);
- `documents(first: 100)` under an agency's grant, bodies included (so each page is also
  100 `access` leaves and a signed checkpoint): p99 latency of sequential requests (< 50 ms).

The ledger is built in bulk first (bench/graphql_ledger.py), as a hospital's history would be.
"""

import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.graphql_ledger import World, build
from bench.hub_ledger import pg_admin
from bench.measure import progress

RESULT_MARK = "GRAPHQL-RESULT "
PROOFS_TARGET = 2_000.0
SUBMIT_TARGET = {"sqlite": 10_000.0, "postgres": 5_000.0}
PAGE_P99_TARGET_MS = 50.0
BATCH = 100
PAGE = 100

PROOF_QUERY = (
    "query($id: ID!) { inclusionProof(documentId: $id) { leafIndex treeSize leafHash hashes"
    " receipt checkpoint { treeSize rootHash note } } checkpoint { treeSize rootHash } }"
)
PAGE_QUERY = (
    "query($after: String) { documents(first: 100, after: $after) {"
    " pageInfo { hasNextPage endCursor } edges { cursor node { id issuer version status"
    " leafIndex digest view body } } } }"
)
SUBMIT_QUERY = (
    "mutation($docs: [DocumentInput!]!) { submitDocuments(documents: $docs) {"
    " results { id status leafIndex error { code message } } checkpoint { treeSize } } }"
)
# ---------------------------------------------------------------------------- the server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(env: dict[str, str], workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`hub serve` on a free loopback port; its log goes to workdir/server.log."""
    import httpx

    port = _free_port()
    log = (workdir / "server.log").open("ab")
    cmd = [
        sys.executable,
        "-c",
        "import sys; from hub.cli import main; sys.exit(main())",
        "serve",
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, cwd=workdir)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"hub serve exited with {proc.returncode}; see {workdir}/server.log")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("hub serve did not become ready in 60 s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------------------- load


# What every wrk script of the benches ends with: a response that is not a 200 without
# errors counts as bad, and the summary is one line starting "WRK " that the bench parses.
WRK_REPORT = """response = function(status, hdrs, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then bad = bad + 1 end
end
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  local errors = 0
  for _, t in ipairs(threads) do errors = errors + t:get("bad") end
  local e = summary.errors
  errors = errors + e.connect + e.read + e.write + e.status + e.timeout
  io.write(string.format("WRK %%d %%d %%d %%.1f %%.1f\\n", summary.requests, errors,
    summary.duration, latency:percentile(50), latency:percentile(99)))
end
"""

_WRK_SCRIPT = (
    """
local token = %(token)s
local ids = {%(ids)s}
local query = %(query)s
local bodies = {}
for i, id in ipairs(ids) do
  bodies[i] = '{"query":"' .. query .. '","variables":{"id":"' .. id .. '"}}'
end
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}
bad = 0
math.randomseed(9162)
request = function()
  return wrk.format("POST", "/graphql", headers, bodies[math.random(#bodies)])
end
"""
    + WRK_REPORT
)


def _lua(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal here


def proofs_wrk(world: World, workdir: Path, seconds: int, connections: int) -> dict[str, Any]:
    script = workdir / "proofs.lua"
    script.write_text(
        _WRK_SCRIPT
        % {
            "token": _lua(world.hospital),
            "ids": ",".join(_lua(i) for i in world.doc_ids),
            "query": _lua(json.dumps(PROOF_QUERY)[1:-1]),
        }
    )
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), world.url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK "))
    requests, errors, micros, p50, p99 = (float(x) for x in line.split()[1:])
    return {
        "rps": (requests - errors) / (micros / 1e6),
        "requests": int(requests),
        "errors": int(errors),
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
        "generator": f"wrk -t1 -c{connections}",
    }


async def _proofs_httpx(world: World, seconds: float, connections: int) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {world.hospital}"}
    rng = random.Random(9162)
    done = errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=world.url, headers=headers, limits=limits) as client:

        async def worker() -> None:
            nonlocal done, errors
            while time.perf_counter() < deadline:
                doc = rng.choice(world.doc_ids)
                r = await client.post(
                    "/graphql", json={"query": PROOF_QUERY, "variables": {"id": doc}}
                )
                done += 1
                if r.status_code != 200 or "errors" in r.json():
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    return {
        "rps": (done - errors) / elapsed,
        "requests": done,
        "errors": errors,
        "generator": f"httpx x{connections} (client-bound: install wrk for the real figure)",
    }


async def _check_proof(world: World) -> None:
    """One proof fetched over HTTP must verify against its signed checkpoint."""
    import httpx

    from hub.ledger.checkpoint import parse_checkpoint
    from hub.ledger.note import b64decode
    from hub.ledger.tree import verify_inclusion

    headers = {"Authorization": f"Bearer {world.hospital}"}
    async with httpx.AsyncClient(base_url=world.url, headers=headers) as client:
        for doc in (world.doc_ids[0], world.doc_ids[-1]):
            r = await client.post("/graphql", json={"query": PROOF_QUERY, "variables": {"id": doc}})
            data = r.json()
            if data.get("errors"):
                raise RuntimeError(f"inclusionProof failed: {data['errors'][0]}")
            proof = data["data"]["inclusionProof"]
            cp = parse_checkpoint(proof["checkpoint"]["note"].split("\n\n")[0] + "\n")
            verify_inclusion(
                proof["leafIndex"],
                proof["treeSize"],
                b64decode(proof["leafHash"], "leafHash"),
                [b64decode(h, "hash") for h in proof["hashes"]],
                cp.root,
            )


async def pages(world: World, count: int) -> dict[str, Any]:
    """Sequential `documents` pages under the agency's grant, walking the cursor."""
    import httpx

    headers = {"Authorization": f"Bearer {world.agency}"}
    latencies: list[float] = []
    after: str | None = None
    async with httpx.AsyncClient(base_url=world.url, headers=headers, timeout=30) as client:
        for n in range(count + 10):
            payload = {"query": PAGE_QUERY, "variables": {"after": after}}
            started = time.perf_counter()
            r = await client.post("/graphql", json=payload)
            elapsed = time.perf_counter() - started
            data = r.json()
            if "errors" in data:
                raise RuntimeError(f"documents page failed: {data['errors'][0]}")
            conn = data["data"]["documents"]
            if len(conn["edges"]) != PAGE or conn["edges"][0]["node"]["body"] is None:
                raise RuntimeError("documents page is not 100 documents with bodies")
            after = conn["pageInfo"]["endCursor"] if conn["pageInfo"]["hasNextPage"] else None
            if n >= 10:  # the first requests warm the server's caches
                latencies.append(elapsed * 1000)
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "max_ms": latencies[-1],
        "requests": len(latencies),
    }


async def submit(world: World, batches: int, concurrency: int, seed: int) -> dict[str, Any]:
    """`batches` x 100 new invoices from `concurrency` clients; documents/s of wall time."""
    import httpx

    from hub.documents.demo_data import demo_invoices
    from hub.documents.invoice import INVOICE_TYPE, invoice_document_id

    invoices = demo_invoices(batches * BATCH, seed=seed)
    bodies = []
    for start in range(0, len(invoices), BATCH):
        docs = [
            {"type": INVOICE_TYPE, "id": invoice_document_id(b), "body": b}
            for b in invoices[start : start + BATCH]
        ]
        bodies.append(json.dumps({"query": SUBMIT_QUERY, "variables": {"docs": docs}}).encode())
    queue = list(reversed(bodies))
    headers = {"Authorization": f"Bearer {world.hospital}", "Content-Type": "application/json"}
    created = 0
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=world.url, headers=headers, limits=limits, timeout=120
    ) as client:

        async def worker() -> None:
            nonlocal created
            while queue:
                body = queue.pop()
                t = time.perf_counter()
                r = await client.post("/graphql", content=body)
                latencies.append((time.perf_counter() - t) * 1000)
                data = r.json()
                if "errors" in data:
                    raise RuntimeError(f"submitDocuments failed: {data['errors'][0]}")
                payload = data["data"]["submitDocuments"]
                size = payload["checkpoint"]["treeSize"]
                for result in payload["results"]:
                    if result["status"] != "CREATED" or result["leafIndex"] >= size:
                        raise RuntimeError(f"not anchored under the checkpoint: {result}")
                    created += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "docs_per_s": created / elapsed,
        "documents": created,
        "seconds": elapsed,
        "batch_p50_ms": statistics.median(latencies),
        "batch_p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "concurrency": concurrency,
    }


def client_main(spec: str) -> int:
    """A load generator in its own process: the server shares no CPU time with our parsing."""
    job = json.loads(spec)
    world = World(**job["world"])
    if job["kind"] == "check":
        asyncio.run(_check_proof(world))
        result: dict[str, Any] = {"ok": True}
    elif job["kind"] == "proofs":
        result = asyncio.run(_proofs_httpx(world, job["seconds"], job["connections"]))
    elif job["kind"] == "pages":
        result = asyncio.run(pages(world, job["count"]))
    else:
        result = asyncio.run(submit(world, job["batches"], job["concurrency"], job["seed"]))
    print(RESULT_MARK + json.dumps(result), flush=True)
    return 0


def run_client(kind: str, world: World, **args: Any) -> dict[str, Any]:
    spec = json.dumps({"kind": kind, "world": world.__dict__, **args})
    cmd = [sys.executable, str(Path(__file__).resolve()), "--client", spec]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    lines = [x for x in done.stdout.splitlines() if x.startswith(RESULT_MARK)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{kind} load generator failed (exit {done.returncode})")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_MARK) :])
    return result


# ---------------------------------------------------------------------------- one database


@dataclass(frozen=True)
class Plan:
    entries: int = 1_000_000
    real: int = 5_000
    proof_seconds: int = 10
    connections: int = 32
    pages: int = 300
    batches: int = 300
    concurrency: int = 16


QUICK = Plan(entries=50_000, real=2_000, proof_seconds=3, pages=50, batches=40)


def measure(url: str, workdir: Path, plan: Plan) -> dict[str, Any]:
    """Build the ledger at `url`, serve it, and run the three loads against it."""
    from hub.config import Settings

    env = {
        **os.environ,
        "HUB_DATABASE_URL": url,
        "HUB_DATA_DIR": str(workdir / "var"),
        "HUB_RATE_LIMIT": "0",
        "HUB_ENV": "dev",
    }
    settings = Settings.from_env(env)
    world = asyncio.run(build(settings, plan.entries, plan.real))
    proc, world.url = start_server(env, workdir)
    try:
        run_client("check", world)
        progress("    inclusionProof + checkpoint")
        if shutil.which("wrk"):
            proofs = proofs_wrk(world, workdir, plan.proof_seconds, plan.connections)
        else:
            progress("    (wrk not installed: apt-get install wrk; httpx is client-bound)")
            proofs = run_client(
                "proofs", world, seconds=plan.proof_seconds, connections=plan.connections
            )
        progress(f"      {proofs['rps']:,.0f} requests/s, {proofs['errors']} errors")
        progress("    documents pages of 100 under a grant")
        page = run_client("pages", world, count=plan.pages)
        progress(f"      p50 {page['p50_ms']:.1f} ms, p99 {page['p99_ms']:.1f} ms")
        progress(f"    submitDocuments, batches of {BATCH}")
        sub = run_client(
            "submit", world, batches=plan.batches, concurrency=plan.concurrency, seed=7
        )
        progress(f"      {sub['docs_per_s']:,.0f} documents/s")
    finally:
        stop_server(proc)
    return {
        "entries": world.entries,
        "build_s": world.build_s,
        "proofs": proofs,
        "pages": page,
        "submit": sub,
    }


def measure_postgres(admin_url: str, workdir: Path, plan: Plan) -> dict[str, Any]:
    name = f"hub_gql_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    base, _, _ = admin_url.rpartition("/")
    asyncio.run(pg_admin(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        return measure(f"{base}/{name}", workdir, plan)
    finally:
        asyncio.run(pg_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# ---------------------------------------------------------------------------- the verdicts


def verdicts(results: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(measurement, value, target, PASS/FAIL) rows."""
    rows = []
    for db, r in results.items():
        n = f"{r['entries']:,}"
        if db == "sqlite":
            p = r["proofs"]
            rows.append(
                (
                    f"inclusionProof + checkpoint, {n} entries ({p['generator']})",
                    f"{p['rps']:,.0f} req/s",
                    f">= {PROOFS_TARGET:,.0f} req/s",
                    "PASS" if p["rps"] >= PROOFS_TARGET and not p["errors"] else "FAIL",
                )
            )
            g = r["pages"]
            rows.append(
                (
                    f"documents page of {PAGE} with bodies under a grant, {n} entries",
                    f"p99 {g['p99_ms']:.1f} ms (p50 {g['p50_ms']:.1f})",
                    f"< {PAGE_P99_TARGET_MS:.0f} ms",
                    "PASS" if g["p99_ms"] < PAGE_P99_TARGET_MS else "FAIL",
                )
            )
        s = r["submit"]
        target = SUBMIT_TARGET[db]
        rows.append(
            (
                f"submitDocuments x{BATCH} on {db}, {s['concurrency']} clients",
                f"{s['docs_per_s']:,.0f} docs/s",
                f">= {target:,.0f} docs/s",
                "PASS" if s["docs_per_s"] >= target else "FAIL",
            )
        )
    return rows


def format_verdicts(rows: list[tuple[str, str, str, str]]) -> str:
    header = ("measurement", "value", "target", "")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(quick: bool, postgres_url: str, out: Path) -> int:
    plan = QUICK if quick else Plan()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="hub-gql-bench-") as tmp:
        workdir = Path(tmp)
        progress(f"GraphQL over HTTP, SQLite, {plan.entries:,} entries")
        (workdir / "sqlite").mkdir()
        results["sqlite"] = measure(f"sqlite://{workdir}/sqlite/hub.db", workdir / "sqlite", plan)
        if postgres_url:
            progress(f"GraphQL over HTTP, PostgreSQL, {plan.entries:,} entries")
            (workdir / "pg").mkdir()
            results["postgres"] = measure_postgres(postgres_url, workdir / "pg", plan)
    rows = verdicts(results)
    print(
        f"GraphQL over loopback HTTP, one uvicorn worker, {os.cpu_count()} CPUs "
        f"(load generators share them)"
    )
    print(format_verdicts(rows), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    data = {
        "results": results,
        "targets": [
            dict(zip(("measurement", "value", "target", "status"), r, strict=True)) for r in rows
        ],
    }
    (out / "graphql.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    progress(f"wrote {out / 'graphql.json'}")
    return 0 if all(r[3] == "PASS" for r in rows) else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--client":
        sys.exit(client_main(sys.argv[2]))
    sys.exit(
        run(
            "--quick" in sys.argv,
            os.environ.get("HUB_BENCH_POSTGRES_URL", ""),
            Path(__file__).resolve().parent / "out",
        )
    )
