"""Ingest by document type over GraphQL: medical invoices against a schema-only type.

    .venv/bin/python bench/document_types.py                 # invoice vs fiscal_receipt, here
    .venv/bin/python bench/document_types.py --base ../main  # and invoices on another tree

One `hub serve` (one worker, rate limit off) on a fresh SQLite database per run; four
concurrent clients post batches of 100 documents for `--seconds`; each batch is answered
after its signed checkpoint. Runs alternate (base invoice, invoice, receipt) `--rounds`
times so that the machine's drift falls on all of them alike; the medians are compared:
the receipt (a JSON Schema type, jsonschema-rs) should ingest at >= 80% of the invoice
(its hand-written rule set), and the invoice within 10% of the base tree. Writes
bench/out/types.json.
"""

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub.documents.demo_data import demo_invoices
from hub.documents.demo_types import demo_receipts

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
BATCH = 100
CLIENTS = 4
SUBMIT = (
    "mutation($d: [DocumentInput!]!) { submitDocuments(documents: $d) {"
    " results { status } checkpoint { treeSize } } }"
)
# kind -> (institution kind, token role, document type, bodies of one batch)
KINDS: dict[str, tuple[str, str, str, Any]] = {
    "invoice": ("hospital", "hospital", "medical_invoice", lambda s: demo_invoices(BATCH, seed=s)),
    "receipt": ("finance_bureau", "agency", "fiscal_receipt", lambda s: demo_receipts(BATCH, s)),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _payloads(kind: str, batches: int) -> list[bytes]:
    doc_type, make = KINDS[kind][2], KINDS[kind][3]
    out = []
    for seed in range(1, batches + 1):
        docs = [
            {"type": doc_type, "id": f"{b['billCode']}-{b['billNumber']}", "body": b}
            for b in make(seed)
        ]
        out.append(json.dumps({"query": SUBMIT, "variables": {"d": docs}}).encode())
    return out


async def _load(url: str, token: str, payloads: list[bytes], seconds: float) -> float:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    pending = iter(payloads)
    count = 0
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        end = time.perf_counter() + seconds
        started = time.perf_counter()

        async def worker() -> None:
            nonlocal count
            while time.perf_counter() < end:
                response = await client.post("/graphql", content=next(pending))
                results = response.json()["data"]["submitDocuments"]["results"]
                if any(r["status"] != "CREATED" for r in results):
                    raise RuntimeError(f"a bench batch was refused: {results[:1]}")
                count += len(results)

        await asyncio.gather(*(worker() for _ in range(CLIENTS)))
        return count / (time.perf_counter() - started)


def run_once(tree: Path, kind: str, seconds: float) -> float:
    """Documents per second of one fresh `hub serve` from ``tree``."""
    inst_kind, role, _, _ = KINDS[kind]
    data = Path(tempfile.mkdtemp(prefix="hub-bench-types-"))
    env = {
        **os.environ,
        "HUB_DATABASE_URL": f"sqlite://{data}/hub.db",
        "HUB_DATA_DIR": str(data),
        "HUB_RATE_LIMIT": "0",
        "PYTHONPATH": str(tree),
    }
    hub = [str(tree / ".venv" / "bin" / "python"), "-m", "hub.cli"]

    def cli(*args: str) -> str:
        done = subprocess.run(
            [*hub, *args], env=env, cwd=tree, check=True, capture_output=True, text=True
        )
        return done.stdout.strip()

    cli("keys", "init")
    cli("institution", "add", "--id", "issuer", "--name", "Issuer", "--kind", inst_kind)
    token = cli("token", "issue", "--role", role, "--sub", "bench", "--inst", "issuer")
    port = _free_port()
    server = subprocess.Popen(
        [*hub, "serve", "--port", str(port)],
        env=env,
        cwd=tree,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if server.poll() is not None:
                    raise RuntimeError("hub serve exited before it was ready") from None
                time.sleep(0.05)
        payloads = _payloads(kind, int(seconds * 250) + 50)
        return asyncio.run(_load(url, token, payloads, seconds))
    finally:
        server.terminate()
        server.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=Path, help="another checkout (with .venv) for A/B")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args(argv)
    runs: dict[str, list[float]] = {"invoice": [], "receipt": [], "base invoice": []}
    for _ in range(args.rounds):
        if args.base is not None:
            runs["base invoice"].append(run_once(args.base.resolve(), "invoice", args.seconds))
        runs["invoice"].append(run_once(ROOT, "invoice", args.seconds))
        runs["receipt"].append(run_once(ROOT, "receipt", args.seconds))
    medians = {k: statistics.median(v) for k, v in runs.items() if v}
    result: dict[str, Any] = {"runs": runs, "medians": medians}
    result["receipt/invoice"] = medians["receipt"] / medians["invoice"]
    if "base invoice" in medians:
        result["invoice/base"] = medians["invoice"] / medians["base invoice"]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "types.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for name, value in medians.items():
        print(f"{name:>14}: {value:8.0f} documents/s (median of {len(runs[name])})")
    print(f"receipt/invoice: {result['receipt/invoice']:.2f} (target >= 0.80)")
    if "invoice/base" in result:
        print(f"  invoice/base: {result['invoice/base']:.2f} (target >= 0.90)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
