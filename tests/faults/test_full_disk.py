"""A real full disk (a small tmpfs) under a real `hub serve`, on SQLite and on PostgreSQL:
submissions are told UNAVAILABLE (503, Retry-After), /readyz says not ready, nothing
acknowledged is lost, and once space is back the same batch goes through and the ledger
verifies."""

from pathlib import Path

import httpx
import pytest

from tests.deploy.server import SUBMIT, Deployment, document_of
from tests.faults.disk import fill, mounted_tmpfs
from tests.faults.pg_cluster import Cluster, pg_bin
from tests.faults.test_postgres_outage import assert_no_server_error, assert_unavailable
from tests.test_observability import HOSPITAL, invoices_of_hospital


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


async def test_full_disk_under_postgres_answers_unavailable_and_not_ready(
    tmp_path: Path,
) -> None:
    bin_dir = pg_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries installed (initdb, pg_ctl)")
    with mounted_tmpfs(PG_DISK_BYTES) as disk:
        cluster = Cluster(disk / "cluster", bin_dir)
        cluster.init("--wal-segsize=1")  # 1 MB WAL segments: the cluster fits a small disk
        cluster.start(*PG_SMALL_WAL)
        try:
            await _fill_under_a_running_hub(cluster, disk, tmp_path)
        finally:
            if cluster.running():
                cluster.stop("immediate")


# A small, bounded WAL (in 1 MB segments), so that what fills the disk is the data.
PG_DISK_BYTES = 96 << 20
PG_SMALL_WAL = ("min_wal_size=4MB", "max_wal_size=16MB")


async def _fill_under_a_running_hub(cluster: Cluster, disk: Path, tmp_path: Path) -> None:
    deployment = Deployment(cluster.url, tmp_path)
    await deployment.prepare([HOSPITAL.id])
    auth = {"Authorization": f"Bearer {deployment.token(HOSPITAL.id)}"}
    before, batch = invoices_of_hospital(2, seed=98), invoices_of_hospital(302, seed=99)[2:]
    server = deployment.serve()
    try:
        url = server.wait_ready()
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:

            async def submit(invoices: list[dict[str, object]]) -> httpx.Response:
                body = {"query": SUBMIT, "variables": {"d": [document_of(i) for i in invoices]}}
                return await client.post("/graphql", json=body, headers=auth)

            first = await submit(before)
            assert first.status_code == 200 and "errors" not in first.json(), first.text
            filler = fill(disk)
            # The server refuses to extend a file (53100), or gives up and restarts:
            # either way the client is told to come back, never INTERNAL.
            assert_unavailable(await submit(batch))
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and "database unavailable" in ready.text, ready.text

            filler.unlink()
            if not cluster.running():  # it stopped, unable to write: an operator restarts it
                cluster.start(*PG_SMALL_WAL)
            answers = [await submit(batch) for _ in range(3)]  # dead pooled connections
            for answer in answers[:-1]:
                if answer.status_code != 200:
                    assert_unavailable(answer)
            assert answers[-1].status_code == 200, answers[-1].text[:500]
            assert (await client.get("/readyz")).status_code == 200
            note = (await client.get("/log/checkpoint")).text.splitlines()
            assert note[1] == "302"  # the refused batch left nothing; its retry went in once
        server.terminate()
        server.wait(30)
    finally:
        server.kill()
    log = server.output()
    assert "database unavailable: PostgreSQL" in log, log[-3000:]
    assert_no_server_error(log)
    verify = deployment.cli("ledger", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
