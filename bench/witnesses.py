"""Ingest with three local witnesses against ingest without, in one run; witnessed lag.

    .venv/bin/python bench/witnesses.py                  # 40 batches of 25 invoices
    .venv/bin/python bench/witnesses.py --batches 10     # smoke

Two `hub serve` processes on fresh SQLite databases, one after the other: the first with
no policy, the second with a 2-of-3 policy on three `hub witness serve` processes on
loopback. The same batches are submitted over HTTP by concurrent clients to each. The
witnessed lag of a submit is the time from its answer to the hub's log line saying the
second witness has cosigned a checkpoint at least as large. Writes out/witnesses.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.measure import progress
from hub.documents.demo_data import DEMO_HOSPITALS, demo_invoices

OUT = Path(__file__).resolve().parent / "out"
_LISTENING = re.compile(r"Uvicorn running on (http://[0-9.]+:[0-9]+)")
SUBMIT = (
    "mutation($d: [DocumentInput!]!) { submitDocuments(documents: $d) {"
    " results { status } checkpoint { treeSize } } }"
)


class Server:
    """A child process; its stderr lines are read as they come, with their arrival time."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", *argv],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.url = ""
        self.cosigned: list[tuple[float, str, int]] = []  # (arrival, witness, size)
        self.changed = threading.Condition()
        self._ready = threading.Event()
        assert self.proc.stderr is not None
        threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True).start()
        if not self._ready.wait(60) or not self.url:
            raise RuntimeError(f"{argv[0]} did not start")

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            found = _LISTENING.search(line)
            if found and not self.url:
                self.url = found.group(1)
                self._ready.set()
            if '"witness cosigned"' in line:
                entry = json.loads(line)
                with self.changed:
                    self.cosigned.append((time.monotonic(), entry["witness"], int(entry["size"])))
                    self.changed.notify_all()
        self._ready.set()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _hub_env(root: Path, policy: Path | None) -> dict[str, str]:
    env = {
        **os.environ,
        "HUB_DATABASE_URL": f"sqlite://{root}/hub.db",
        "HUB_DATA_DIR": str(root),
        "HUB_LOG_KEY_FILE": str(root.parent / "log.key"),
        "HUB_JWT_KEY_FILE": str(root.parent / "jwt.pem"),
        "HUB_RATE_LIMIT": "0",
        "HUB_ENV": "dev",
    }
    if policy is not None:
        env["HUB_WITNESS_POLICY"] = str(policy)
    return env


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli", *args], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"hub {' '.join(args[:2])}: {done.stderr.strip()}")
    return done.stdout.strip()


async def _ingest(url: str, token: str, batches: list[list[dict[str, Any]]], clients: int) -> Any:
    queue = list(enumerate(batches))
    answers: list[tuple[float, int]] = []

    async def client(http: httpx.AsyncClient) -> None:
        while queue:
            _, batch = queue.pop()
            docs = [
                {"type": "medical_invoice", "id": f"{b['billCode']}-{b['billNumber']}", "body": b}
                for b in batch
            ]
            r = await http.post(
                f"{url}/graphql",
                json={"query": SUBMIT, "variables": {"d": docs}},
                headers={"Authorization": f"Bearer {token}"},
            )
            payload = r.json()["data"]["submitDocuments"]
            assert {x["status"] for x in payload["results"]} == {"CREATED"}, payload
            answers.append((time.monotonic(), int(payload["checkpoint"]["treeSize"])))

    started = time.monotonic()
    async with httpx.AsyncClient(timeout=60) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return time.monotonic() - started, answers


def _lags(server: Server, answers: list[tuple[float, int]], quorum: int) -> list[float]:
    lags = []
    for answered, size in answers:
        times: dict[str, float] = {}
        for at, witness, cosigned in server.cosigned:
            if cosigned >= size and witness not in times:
                times[witness] = at
        if len(times) >= quorum:
            lags.append(max(0.0, sorted(times.values())[quorum - 1] - answered))
    return lags


def run(batches: int, size: int, clients: int, out: Path) -> dict[str, Any]:
    hospital = DEMO_HOSPITALS[0]
    bodies = [b for b in demo_invoices(batches * size * 12) if b["billCode"] == hospital.bill_code]
    work = [bodies[i * size : (i + 1) * size] for i in range(batches)]
    if len(work[-1]) < size:
        raise RuntimeError("not enough demo invoices for that many batches")
    results: dict[str, Any] = {"batches": batches, "batch_size": size, "clients": clients}
    with tempfile.TemporaryDirectory(prefix="bench-witnesses-") as tmp:
        root = Path(tmp)
        log_vkey = _cli(_hub_env(root / "none", None), "keys", "init").rsplit(" ", 1)[-1]
        witnesses = []
        for i in range(3):
            env = {**os.environ, "HUB_DATA_DIR": str(root / f"w{i}")}
            vkey = _cli(env, "witness", "init", "--name", f"w{i}.bench.local")
            server = Server(["witness", "serve", "--port", "0", "--log", log_vkey], env)
            witnesses.append((f"w{i}", vkey, server))
        policy = root / "policy.txt"
        policy.write_text(
            f"log {log_vkey}\n"
            + "".join(f"witness {n} {v} {s.url}\n" for n, v, s in witnesses)
            + "group two 2 w0 w1 w2\nquorum two\n"
        )
        try:
            for label, chosen in (("none", None), ("three", policy)):
                env = _hub_env(root / label, chosen)
                (root / label).mkdir()
                _cli(
                    env,
                    "institution",
                    "add",
                    "--id",
                    hospital.id,
                    "--name",
                    "H",
                    "--kind",
                    "hospital",
                )
                token = _cli(
                    env,
                    "token",
                    "issue",
                    "--role",
                    "hospital",
                    "--sub",
                    "his",
                    "--inst",
                    hospital.id,
                )
                hub = Server(["serve", "--port", "0"], env)
                try:
                    seconds, answers = asyncio.run(_ingest(hub.url, token, work, clients))
                    if chosen is not None:  # until the quorum has cosigned the last one
                        last = max(s for _, s in answers)
                        with hub.changed:
                            tail = [(0.0, last)]
                            hub.changed.wait_for(lambda h=hub, t=tail: bool(_lags(h, t, 2)), 60)
                    lags = _lags(hub, answers, 2) if chosen is not None else []
                finally:
                    hub.stop()
                entry: dict[str, Any] = {
                    "seconds": round(seconds, 3),
                    "documents_per_second": round(batches * size / seconds, 1),
                }
                if lags:
                    q = statistics.quantiles(lags, n=100) if len(lags) > 1 else lags * 99
                    entry["witnessed_lag_p50_s"] = round(statistics.median(lags), 4)
                    entry["witnessed_lag_p99_s"] = round(q[98], 4)
                results[label] = entry
                progress(f"  witnesses={label}: {entry}")
        finally:
            for _, _, server in witnesses:
                server.stop()
    none, three = results["none"]["documents_per_second"], results["three"]["documents_per_second"]
    results["ingest_ratio"] = round(three / none, 3)
    results["load_average"] = round(os.getloadavg()[0], 2)
    out.mkdir(parents=True, exist_ok=True)
    (out / "witnesses.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    progress(f"[witnesses] {args.batches} batches of {args.batch_size}, 3 witnesses vs none")
    run(args.batches, args.batch_size, args.clients, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
