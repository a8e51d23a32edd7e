"""A small real filesystem to fill up: a tmpfs mounted for one test."""

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def mounted_tmpfs(size: int) -> Iterator[Path]:
    """A tmpfs of ``size`` bytes (world-traversable, for a server run as postgres); skips
    the test where mounting is not allowed (not root)."""
    mount_point = Path(tempfile.mkdtemp(prefix="hub-test-disk-"))
    mount_point.chmod(0o755)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        mount_point.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
        with contextlib.suppress(OSError):
            mount_point.rmdir()


def fill(disk: Path) -> Path:
    """Write a file until the disk refuses another byte; the file, to remove later."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out:
        for chunk in (1 << 20, 4096):  # megabytes, then the last partial one page by page
            with contextlib.suppress(OSError):
                while True:
                    out.write(b"\0" * chunk)
    assert os.statvfs(disk).f_bavail == 0, "the disk still has room"
    return filler
