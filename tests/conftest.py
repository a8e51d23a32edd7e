"""Database fixtures: every ledger/document test runs on SQLite and on PostgreSQL.

PostgreSQL runs when HUB_TEST_POSTGRES_URL is set (an admin URL; each test creates and
drops its own database) and is required when CI=true.
"""

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import settings

from hub.config import Settings
from hub.db import Database, migrate
from hub.keys import create_log_key
from hub.services import Hub

PG_URL = os.environ.get("HUB_TEST_POSTGRES_URL", "")
IN_CI = os.environ.get("CI") == "true"
BACKENDS = ["sqlite", "postgres"]

# A red CI run lands nothing, so CI replays the same examples every time and never fails
# on a timing deadline; local runs keep drawing new examples and find new cases there.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if IN_CI:
    settings.load_profile("ci")


def pytest_configure(config: pytest.Config) -> None:
    if IN_CI and not PG_URL:
        raise pytest.UsageError("CI=true requires HUB_TEST_POSTGRES_URL (PostgreSQL tests)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Browser tests last: Playwright's sync API keeps an event loop running in the main
    # thread for the whole session, and every asyncio test collected after it would fail.
    web = Path(__file__).parent / "web"
    items.sort(key=lambda item: Path(item.path).is_relative_to(web))


def _pg_url_for(name: str) -> str:
    base, _, _ = PG_URL.rpartition("/")
    return f"{base}/{name}"


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_URL.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres" and not PG_URL:
        pytest.skip("HUB_TEST_POSTGRES_URL is not set")
    return str(request.param)


@pytest.fixture
async def database_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite://{tmp_path}/hub.db"
        return
    name = f"hub_test_{uuid.uuid4().hex[:12]}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url_for(name)
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    await migrate(database_url)
    database = Database(database_url)
    await database.open()
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def hub(database_url: str, tmp_path: Path) -> AsyncIterator[Hub]:
    """A started Hub (migrated database, fresh log key) on each backend."""
    key_file = tmp_path / "log.key"
    settings = Settings(database_url=database_url, data_dir=tmp_path, log_key_file=key_file)
    create_log_key(key_file, settings.origin)
    started = await Hub.start(settings)
    try:
        yield started
    finally:
        await started.stop()
