"""`hub backup FILE` of a running SQLite hub: a consistent copy taken while submissions
flow, which passes `hub ledger verify` and serves again once restored."""

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx

from tests.deploy.server import SUBMIT, Deployment, document_of
from tests.test_observability import HOSPITAL, invoices_of_hospital


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_backup_of_a_running_hub_under_writes_verifies_and_restores(
    tmp_path: Path,
) -> None:
    deployment = Deployment(f"sqlite://{tmp_path}/hub.db", tmp_path)
    await deployment.prepare([HOSPITAL.id])
    auth = {"Authorization": f"Bearer {deployment.token(HOSPITAL.id)}"}
    invoices = invoices_of_hospital(120, seed=97)
    copy = tmp_path / "backup" / "hub-copy.db"
    copy.parent.mkdir()
    acknowledged_before = 0
    server = deployment.serve()
    try:
        url = server.wait_ready()
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            submitted = 0
            backup_started = asyncio.Event()

            async def writer() -> None:
                nonlocal submitted
                for start in range(0, len(invoices), 10):
                    if start == 30:
                        backup_started.set()  # writes keep coming while the copy is taken
                    docs = [document_of(i) for i in invoices[start : start + 10]]
                    body = {"query": SUBMIT, "variables": {"d": docs}}
                    answer = await client.post("/graphql", json=body, headers=auth)
                    assert answer.status_code == 200 and "errors" not in answer.json()
                    submitted = start + 10

            async def backup() -> subprocess.CompletedProcess[str]:
                nonlocal acknowledged_before
                await backup_started.wait()
                acknowledged_before = submitted
                return await asyncio.to_thread(run_cli, deployment.env, "backup", str(copy))

            _, done = await asyncio.gather(writer(), backup())
            live = (await client.get("/log/checkpoint")).text.splitlines()
        server.terminate()
        server.wait(30)
    finally:
        server.kill()

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"backup OK: {copy}")
    assert not list(copy.parent.glob(".*partial"))  # nothing half-written left behind
    assert [p.name for p in copy.parent.iterdir()] == ["hub-copy.db"]  # one file, no -wal
    restored = {**deployment.env, "HUB_DATABASE_URL": f"sqlite://{copy}"}
    verify = run_cli(restored, "ledger", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    copied_size = int(verify.stdout.split("ledger OK: ", 1)[1].split()[0])
    # Everything acknowledged before the backup began is in it; it is never ahead.
    assert acknowledged_before <= copied_size <= int(live[1]) == len(invoices)

    restored_server = Deployment(f"sqlite://{copy}", tmp_path)
    server = restored_server.serve()
    try:
        url = server.wait_ready()
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            note = (await client.get("/log/checkpoint")).text.splitlines()
            assert int(note[1]) == copied_size
            extra = invoices_of_hospital(121, seed=97)[120:]
            body = {"query": SUBMIT, "variables": {"d": [document_of(i) for i in extra]}}
            answer = await client.post("/graphql", json=body, headers=auth)
            assert answer.json()["data"]["submitDocuments"]["results"][0]["status"] == "CREATED"
    finally:
        server.kill()


def test_backup_refuses_to_overwrite_and_names_postgres_tools(tmp_path: Path) -> None:
    existing = tmp_path / "existing.db"
    existing.write_bytes(b"keep me")
    env = {**Deployment(f"sqlite://{tmp_path}/hub.db", tmp_path).env}
    (tmp_path / "hub.db").write_bytes(b"")
    refused = run_cli(env, "backup", str(existing))
    assert refused.returncode != 0
    assert "exists" in refused.stderr and existing.read_bytes() == b"keep me"
    postgres = {**env, "HUB_DATABASE_URL": "postgres://postgres@127.0.0.1:1/none"}
    refused = run_cli(postgres, "backup", str(tmp_path / "new.db"))
    assert refused.returncode != 0 and "pg_dump" in refused.stderr
    assert not (tmp_path / "new.db").exists()
