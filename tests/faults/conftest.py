"""Fixtures for the fault tests: a PostgreSQL cluster of their own to stop and start."""

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.disk import mounted_tmpfs
from tests.faults.pg_cluster import Cluster, pg_bin

SMALL_DISK_BYTES = 32 << 20


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A mounted tmpfs of SMALL_DISK_BYTES, unmounted at the end."""
    with mounted_tmpfs(SMALL_DISK_BYTES) as disk:
        yield disk


@pytest.fixture
def pg_cluster() -> Iterator[Cluster]:
    """A started throwaway cluster, stopped (if still running) and removed at the end."""
    bin_dir = pg_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries installed (initdb, pg_ctl)")
    # Not under pytest's tmp_path: that is private to root, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="hub-test-pg-"))
    root.chmod(0o711)  # mkdtemp's 0700 would keep the postgres user out
    cluster = Cluster(root / "cluster", bin_dir)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        if cluster.running():
            with contextlib.suppress(RuntimeError):
                cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
