"""Fixtures the adapter tests share: one fake hub served over real HTTP."""

from collections.abc import Iterator

import pytest

from tests.adapters.fakehub import FakeHub, FakeHubServer


@pytest.fixture
def hub() -> Iterator[FakeHubServer]:
    """A FakeHub over real HTTP, taking FakeHub's default token. (Adapters talk to the
    hub only over HTTP, so here `hub` is this stand-in, not tests/conftest.py's Hub.)"""
    server = FakeHubServer(FakeHub())
    server.start()
    yield server
    server.stop()
