"""A real full disk (a small tmpfs) under a real `hub serve` on SQLite: submissions are
told UNAVAILABLE (503, Retry-After), /readyz says not ready, nothing acknowledged is lost,
and once space is back the same batch goes through and the ledger verifies."""

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy.server import SUBMIT, Deployment, document_of
from tests.faults.test_postgres_outage import assert_no_server_error, assert_unavailable
from tests.test_observability import HOSPITAL, invoices_of_hospital

DISK_BYTES = 32 << 20


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A mounted tmpfs of DISK_BYTES; skips where mounting is not allowed (not root)."""
    mount_point = tmp_path / f"disk-{uuid.uuid4().hex[:8]}"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the disk refuses another byte; the file, to remove later."""
    filler = disk / "filler"
    chunk = b"\0" * (1 << 20)
    with open(filler, "wb", buffering=0) as out:
        with contextlib.suppress(OSError):
            while True:
                out.write(chunk)
        with contextlib.suppress(OSError):  # the last partial megabyte, byte by byte
            while True:
                out.write(b"\0" * 4096)
    probe = os.statvfs(disk)
    assert probe.f_bavail == 0, "the disk still has room"
    return filler


async def test_full_disk_answers_unavailable_and_not_ready_until_space_is_back(
    small_disk: Path, tmp_path: Path
) -> None:
    deployment = Deployment(f"sqlite://{small_disk}/hub.db", tmp_path)
    await deployment.prepare([HOSPITAL.id])
    auth = {"Authorization": f"Bearer {deployment.token(HOSPITAL.id)}"}
    before, batch = invoices_of_hospital(2, seed=95), invoices_of_hospital(302, seed=96)[2:]
    server = deployment.serve()
    try:
        url = server.wait_ready()
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:

            async def submit(invoices: list[dict[str, object]]) -> httpx.Response:
                body = {"query": SUBMIT, "variables": {"d": [document_of(i) for i in invoices]}}
                return await client.post("/graphql", json=body, headers=auth)

            first = await submit(before)
            assert first.status_code == 200 and "errors" not in first.json(), first.text
            filler = fill(small_disk)

            ready = await client.get("/readyz")
            assert ready.status_code == 503 and "disk full" in ready.text, ready.text
            # More than the write-ahead log has room for: the write needs the disk.
            assert_unavailable(await submit(batch))
            tree = (await client.get("/log/checkpoint")).text.splitlines()
            assert tree[1] == "2"  # the refused batch left nothing behind

            filler.unlink()
            assert (await client.get("/readyz")).status_code == 200
            again = await submit(batch)
            assert again.status_code == 200 and "errors" not in again.json(), again.text[:500]
            results = again.json()["data"]["submitDocuments"]["results"]
            assert {r["status"] for r in results} == {"CREATED"}
            assert (await client.get("/log/checkpoint")).text.splitlines()[1] == "302"
        server.terminate()
        server.wait(30)
    finally:
        server.kill()
    log = server.output()
    assert "database unavailable: SQLite: database or disk is full" in log, log[-3000:]
    assert_no_server_error(log)
    verify = deployment.cli("ledger", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
