"""Database fixtures: every ledger/document test runs on SQLite and on PostgreSQL.

PostgreSQL runs when HUB_TEST_POSTGRES_URL is set (an admin URL; each test creates and
drops its own database) and is required when CI=true.

`database_url` is an empty database (for tests of migrating); `migrated_url` the same one
with the schema in place: on SQLite a copy of one file migrated once per session.
Hubs started here integrate inline (Settings.sqlite_integrator): the child process is
hub.sqlite_integrator's own subject, tested in tests/ledger/test_integrator.py and by every
test that starts `hub serve`.
"""

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import settings

from hub.config import Settings
from hub.db import Database, migrate, sqlite_path
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


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per session, copied by each test that needs a schema."""
    path = tmp_path_factory.mktemp("template") / "hub.db"
    asyncio.run(migrate(f"sqlite://{path}"))
    leftovers = [p.name for p in path.parent.iterdir() if p != path]
    assert not leftovers, f"the template is more than one file: {leftovers}"
    return path


@pytest.fixture
async def migrated_url(database_url: str, sqlite_template: Path) -> str:
    """`database_url` with the schema in place."""
    path = sqlite_path(database_url)
    if path is None:
        await migrate(database_url)
    else:
        shutil.copyfile(sqlite_template, path)
    return database_url


@pytest.fixture
async def db(migrated_url: str) -> AsyncIterator[Database]:
    database = Database(migrated_url)
    await database.open()
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def hub(migrated_url: str, tmp_path: Path) -> AsyncIterator[Hub]:
    """A started Hub (migrated database, fresh log key) on each backend."""
    key_file = tmp_path / "log.key"
    settings = Settings(
        database_url=migrated_url,
        data_dir=tmp_path,
        log_key_file=key_file,
        sqlite_integrator="inline",
    )
    create_log_key(key_file, settings.origin)
    started = await Hub.start(settings, run_migrations=False)
    try:
        yield started
    finally:
        await started.stop()
