"""The docs' runnable examples, run as written against a real `hub serve`.

Every ```sh block marked `<!-- example -->` in docs/*.md runs, in the order of its file,
in one `bash -euo pipefail` shell: HUB is the server's URL, `hub` is this checkout's CLI
on the same data directory and database, and the shell starts in an empty folder. An
example that fails (a command's exit status, a `jq -e` that does not hold) fails the test
with its file and line.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.markdown import DOCS, examples
from tests.serving import ServerProcess

WITH_EXAMPLES = [path for path in DOCS if examples(path)]
# Each example's start is announced on stderr, so a failure names the one that failed.
_ANNOUNCE = "### example "


def _script(path: Path) -> str:
    parts = ["set -euo pipefail"]
    for line, text in examples(path):
        where = f"{path.relative_to(path.parents[1]).as_posix()}:{line}"
        parts += [f"echo '{_ANNOUNCE}{where}' >&2", text]
    return "\n".join(parts) + "\n"


def _environment(root: Path) -> dict[str, str]:
    bin_dir = root / "bin"
    bin_dir.mkdir()
    hub = bin_dir / "hub"  # the CLI of this checkout, whatever is installed on PATH
    hub.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m hub.cli "$@"\n')
    hub.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    data = root / "var"
    return {
        **env,
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "HUB_DATA_DIR": str(data),
        "HUB_DATABASE_URL": f"sqlite://{data}/hub.db",
        "HUB_ENV": "dev",
    }


def test_some_docs_have_examples() -> None:
    assert {p.name for p in WITH_EXAMPLES} >= {"api-guide.md", "operator-guide.md"}


@pytest.mark.parametrize("path", WITH_EXAMPLES, ids=lambda p: p.name)
def test_examples_run_against_a_real_hub(path: Path, tmp_path: Path) -> None:
    env = _environment(tmp_path)
    keys = subprocess.run(["hub", "keys", "init"], env=env, capture_output=True, text=True)
    assert keys.returncode == 0, keys.stderr
    server = ServerProcess(env)
    try:
        env["HUB"] = server.wait_ready()
        work = tmp_path / "work"
        work.mkdir()
        run = subprocess.run(
            ["bash", "-c", _script(path)],
            env=env,
            cwd=work,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        server.terminate()
        server.wait(30)
    if run.returncode != 0:
        failed = [line for line in run.stderr.splitlines() if line.startswith(_ANNOUNCE)]
        where = failed[-1].removeprefix(_ANNOUNCE) if failed else "before the first example"
        pytest.fail(
            f"the example at {where} failed (exit {run.returncode}):\n"
            f"stdout:\n{run.stdout[-3000:]}\nstderr:\n{run.stderr[-3000:]}"
        )
