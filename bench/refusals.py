"""`bench/run.py --refusals`: what refused requests cost a real `hub serve` (issue 19).

Two rows:

- the server's CPU time per request for each kind of request the hub refuses (a field
  repeated 660 times, too deep, too many aliases or tokens, thousands of unknown fields,
  an oversized query, body or batch variables, a bad token), read from the server
  process's own CPU counters over many requests of each kind, every text distinct so no
  cache answers; the most expensive kind is the row's figure;
- `/healthz` latency (p50, p99, max) while 8 clients send that most expensive refused
  request as fast as they are answered.

The rate limit is off (``HUB_RATE_LIMIT=0``), as for an attacker with many addresses: each
request then pays for everything up to its refusal.
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.graphql import start_server, stop_server
from bench.measure import progress

CLIENTS = 8
PER_KIND = 60
Body = Callable[[int], tuple[bytes, dict[str, str]]]


def _query(text: str, token: str | None = None) -> Callable[[int], tuple[bytes, dict[str, str]]]:
    def make(n: int) -> tuple[bytes, dict[str, str]]:
        headers = {"content-type": "application/json"}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        return json.dumps({"query": f"{text} # {n}"}).encode(), headers

    return make


def _variables(n: int) -> tuple[bytes, dict[str, str]]:
    junk = [{"type": 1, "id": [n] * 8, "body": None}] * 12_000
    query = (
        "mutation($d: [DocumentInput!]!) { submitDocuments(documents: $d)"
        f" {{ checkpoint {{ treeSize }} }} }} # {n}"
    )
    body = json.dumps({"query": query, "variables": {"d": junk}}).encode()
    return body, {"content-type": "application/json"}


def _batch(n: int, size: int) -> tuple[bytes, dict[str, str]]:
    item = {"type": "medical_invoice", "id": f"x-{n}", "body": {"items": [{"k": "v"}] * 50}}
    query = (
        "mutation($d: [DocumentInput!]!) { submitDocuments(documents: $d)"
        f" {{ checkpoint {{ treeSize }} }} }} # {n}"
    )
    body = json.dumps({"query": query, "variables": {"d": [item] * size}}).encode()
    return body, {"content-type": "application/json"}


def _oversized(n: int) -> tuple[bytes, dict[str, str]]:
    return b'{"query": "' + b" " * (2 * 1024 * 1024 + n) + b'"}', {
        "content-type": "application/json"
    }


KINDS: dict[str, Body] = {
    "field repeated 660 times": _query("{ checkpoint { " + "treeSize " * 660 + "} }"),
    "nested 50 deep": _query("{ checkpoint " + "{ note " * 50 + "}" * 50 + " }"),
    "aliases to the token cap": _query(
        "{ " + " ".join(f"a{i}: checkpoint {{ treeSize }}" for i in range(600)) + " }"
    ),
    "over the token cap": _query("{ " + "checkpoint { treeSize } " * 1400 + "}"),
    "2,000 unknown fields": _query("{ " + " ".join(f"f{i}" for i in range(2000)) + " }"),
    "990 unknown fields (the token cap)": _query(
        "{ " + " ".join(f"f{i}" for i in range(990)) + " }"
    ),
    "195 unknown fields (the field cap)": _query(
        "{ " + " ".join(f"f{i}" for i in range(195)) + " }"
    ),
    "30 aliases, 195 fields": _query(
        "{ "
        + " ".join(f"a{i}: checkpoint {{ treeSize rootHash note size{i} }}" for i in range(30))
        + " "
        + " ".join(f"g{i}" for i in range(45))
        + " }"
    ),
    "a batch of 500 that does not fit": lambda n: _batch(n, 500),
    "64 KB query text": _query("{ checkpoint { treeSize } } #" + "x" * 70_000),
    "2 MB body": _oversized,
    "batch variables that do not fit": _variables,
    "malformed token": _query("{ documents { totalCount } }", token="not.a.jwt"),
}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def cost_per_request(url: str, pid: int, make: Body) -> tuple[float, set[int]]:
    """Server CPU milliseconds per request of one kind, and the statuses it answered."""
    import httpx

    bodies = [make(n) for n in range(PER_KIND)]
    statuses: set[int] = set()
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await client.post("/graphql", content=bodies[0][0], headers=bodies[0][1])  # warm
        before = cpu_seconds(pid)
        for body, headers in bodies[1:]:
            r = await client.post("/graphql", content=body, headers=headers)
            statuses.add(r.status_code)
            answer = r.json()
            assert answer.get("errors") and not answer.get("data"), answer
        spent = cpu_seconds(pid) - before
    return spent * 1000 / (PER_KIND - 1), statuses


async def healthz_under_load(url: str, make: Body, seconds: float) -> dict[str, Any]:
    import httpx

    stop = time.monotonic() + seconds
    sent = [0]

    async def attacker(k: int) -> None:
        n = 10_000 * (k + 1)
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            while time.monotonic() < stop:
                body, headers = make(n)
                n += 1
                await client.post("/graphql", content=body, headers=headers)
                sent[0] += 1

    latencies: list[float] = []

    async def prober() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            while time.monotonic() < stop:
                started = time.perf_counter()
                r = await client.get("/healthz")
                latencies.append((time.perf_counter() - started) * 1000)
                assert r.status_code == 200
                await asyncio.sleep(0.05)

    await asyncio.gather(prober(), *(attacker(k) for k in range(CLIENTS)))
    latencies.sort()
    return {
        "clients": CLIENTS,
        "seconds": seconds,
        "refused_per_s": round(sent[0] / seconds, 1),
        "healthz_p50_ms": round(statistics.median(latencies), 2),
        "healthz_p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 2),
        "healthz_max_ms": round(latencies[-1], 2),
        "probes": len(latencies),
    }


def run(out: Path, seconds: float = 10.0) -> int:
    """The refusal bench; writes out/refusals.json. Exit 1 only when the run broke."""
    with tempfile.TemporaryDirectory(prefix="hub-bench-refusals-") as tmp:
        workdir = Path(tmp)
        env = {
            **os.environ,
            "HUB_DATABASE_URL": f"sqlite://{workdir / 'hub.db'}",
            "HUB_DATA_DIR": str(workdir / "var"),
            "HUB_RATE_LIMIT": "0",
            "HUB_ENV": "dev",
        }
        keys = [sys.executable, "-m", "hub.cli", "keys", "init"]
        subprocess.run(keys, env=env, check=True, capture_output=True, timeout=120)
        proc, url = start_server(env, workdir)
        try:
            costs: dict[str, Any] = {}
            for name, make in KINDS.items():
                ms, statuses = asyncio.run(cost_per_request(url, proc.pid, make))
                costs[name] = {"cpu_ms": round(ms, 2), "statuses": sorted(statuses)}
                progress(f"    {name}: {ms:.2f} ms CPU per request ({sorted(statuses)})")
            worst = max(costs, key=lambda k: costs[k]["cpu_ms"])
            progress(f"    /healthz while {CLIENTS} clients send '{worst}' for {seconds:.0f} s")
            load = asyncio.run(healthz_under_load(url, KINDS[worst], seconds))
            progress(
                f"      p50 {load['healthz_p50_ms']} ms, p99 {load['healthz_p99_ms']} ms,"
                f" max {load['healthz_max_ms']} ms; {load['refused_per_s']} refused/s"
            )
        finally:
            stop_server(proc)
    result = {
        "costs": costs,
        "worst": {"kind": worst, **costs[worst]},
        "healthz_under_refusals": load,
        "load_average": os.getloadavg(),
        "note": "indicative: a shared 2-core machine",
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "refusals.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"worst refused request: {worst}, {costs[worst]['cpu_ms']} ms CPU;"
        f" /healthz p99 {load['healthz_p99_ms']} ms under {CLIENTS} clients"
    )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    sys.exit(run(args.out, args.seconds))
