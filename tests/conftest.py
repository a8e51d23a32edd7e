"""Database fixtures: every ledger/document test runs on SQLite and on PostgreSQL.

PostgreSQL runs when HUB_TEST_POSTGRES_URL is set (an admin URL; each test creates and
drops its own database) and is required when CI=true.

`database_url` is an empty database (for tests of migrating); `migrated_url` the same one
with the schema in place, copied from a template migrated once per session (a file on
SQLite, `CREATE DATABASE ... TEMPLATE` on PostgreSQL).
Hubs started here integrate inline (Settings.sqlite_integrator): the child process
(hub.store.sqlite_integrator) has its own tests
(tests/ledger/test_integrator.py), and every test that starts `hub serve` runs it too.
"""

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from hub.config import Settings
from hub.keys import create_log_key
from hub.services import Hub
from hub.store.db import Database, migrate

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


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per session, copied by each test that needs a schema."""
    path = tmp_path_factory.mktemp("template") / "hub.db"
    asyncio.run(migrate(f"sqlite://{path}"))
    leftovers = [p.name for p in path.parent.iterdir() if p != path]
    assert not leftovers, f"the template is more than one file: {leftovers}"
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str | None]:
    """A PostgreSQL database migrated once per session, the TEMPLATE of each test's."""
    if not PG_URL:
        yield None
        return
    name = f"hub_template_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(migrate(_pg_url_for(name)))
        yield name
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def database_url(
    backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    sqlite_template: Path,
    postgres_template: str | None,
) -> AsyncIterator[str]:
    """The test's own database: empty, unless the test asks for `migrated_url` too.

    Deciding here, not in `migrated_url`, lets a test take both and get one database.
    """
    migrated = "migrated_url" in request.fixturenames
    if backend == "sqlite":
        url = f"sqlite://{tmp_path}/hub.db"
        if migrated:
            shutil.copyfile(sqlite_template, tmp_path / "hub.db")
        yield url
        return
    name = f"hub_test_{uuid.uuid4().hex[:12]}"
    if migrated:
        await _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    else:
        await _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url_for(name)
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def migrated_url(database_url: str) -> str:
    """`database_url` with the schema in place: a copy of the session's migrated template."""
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
