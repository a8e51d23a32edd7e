"""The Dockerfile: multi-stage, no build tools in the image, a non-root user, hub serve."""

from __future__ import annotations

import re
import tomllib
from pathlib import PurePosixPath

from tests.k8s.dockerfile import (
    BUILD_TOOLS,
    Stage,
    default_cmd,
    entrypoint,
    exec_form,
    image_user,
)
from tests.k8s.render import ROOT


def test_dockerfile_is_multi_stage_and_final_stage_copies_from_build(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    names = {s.name for s in stages[:-1]}
    copies_from = [
        re.search(r"--from=(\S+)", args) for args in stages[-1].all("COPY") if "--from=" in args
    ]
    assert copies_from and all(m is not None and m[1] in names for m in copies_from)
    assert stages[-1].base not in names, "the final stage must start from a clean base image"


def test_final_stage_has_no_build_tools(final: Stage) -> None:
    runs = " ".join(final.all("RUN"))
    assert not BUILD_TOOLS.search(runs), BUILD_TOOLS.search(runs)
    assert not re.search(r"\b(apt-get|apt|apk) +(install|add)\b", runs)
    assert "slim" in final.base or "distroless" in final.base, final.base


def test_build_tools_pattern_catches_compilers() -> None:
    # Guards the guard: the pattern above must see the usual ways of installing a compiler.
    for line in (
        "apt-get install -y build-essential",
        "apk add gcc musl-dev",
        "yum -y install make",
    ):
        assert BUILD_TOOLS.search(line), line
    assert not BUILD_TOOLS.search("pip install --no-deps . && hub --help > /dev/null")


def test_final_stage_runs_as_numeric_non_root_user(final: Stage) -> None:
    uid, gid = image_user(final)
    assert uid > 0 and gid > 0


def test_image_starts_hub_serve_on_all_addresses_of_both_families(final: Stage) -> None:
    assert [*entrypoint(final), *default_cmd(final)] == [
        "hub",
        "serve",
        "--host",
        "::",
        "--port",
        "8000",
    ]
    assert "8000" in (final.last("EXPOSE") or "").split()


def test_healthcheck_probes_healthz(final: Stage) -> None:
    check = final.last("HEALTHCHECK")
    assert check is not None
    options, sep, command = check.partition("CMD ")
    assert sep, "HEALTHCHECK needs a CMD"
    assert re.search(r"--timeout=\d+s", options)
    probe = exec_form(command)
    assert any("127.0.0.1:8000/healthz" in part for part in probe), probe


def test_build_stage_copies_every_package_pip_needs(stages: list[Stage]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    includes = project["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in includes}
    needed = {*packages, "pyproject.toml", project["project"]["readme"]}
    copied = {
        PurePosixPath(src).name
        for s in stages[:-1]
        for args in s.all("COPY")
        for src in args.split()[:-1]
        if not src.startswith("--")
    }
    assert needed <= copied, needed - copied
    lines = (line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines())
    ignore = [line for line in lines if line and not line.startswith("#")]
    assert ignore[0] == "*", ".dockerignore must start by excluding everything"
    allowed = {line[1:].strip("/") for line in ignore if line.startswith("!")}
    assert needed <= allowed, needed - allowed
    assert not allowed & {".git", ".venv", "var", "tests", ".env"}
