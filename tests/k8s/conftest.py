"""Fixtures of the manifest tests: each overlay's rendered objects, the Dockerfile's stages."""

from __future__ import annotations

from typing import Any

import pytest

from tests.k8s.dockerfile import Stage, parse_dockerfile
from tests.k8s.render import OVERLAYS, ROOT, render


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def objs(overlay: str) -> tuple[dict[str, Any], ...]:
    return render(overlay)


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile((ROOT / "Dockerfile").read_text())


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]
