"""Settings from the environment: HUB_SQLITE_INTEGRATOR picks where integration runs."""

from pathlib import Path

import pytest

from hub.config import Settings
from hub.keys import create_log_key
from hub.services import Hub
from hub.store.db import migrate
from hub.store.sqlite_integrator import AVAILABLE, SqliteIntegrator


def test_the_integrator_is_a_child_process_unless_told_inline() -> None:
    assert Settings.from_env({}).sqlite_integrator == "process"
    assert Settings.from_env({"HUB_SQLITE_INTEGRATOR": "inline"}).sqlite_integrator == "inline"
    with pytest.raises(ValueError, match="HUB_SQLITE_INTEGRATOR must be 'process' or 'inline'"):
        Settings.from_env({"HUB_SQLITE_INTEGRATOR": "thread"})
    with pytest.raises(ValueError, match="sqlite_integrator"):
        Settings(sqlite_integrator="thread")


@pytest.mark.skipif(not AVAILABLE, reason="no memfd or fd passing on this system")
@pytest.mark.parametrize(("where", "child"), [("process", True), ("inline", False)])
async def test_a_sqlite_hub_integrates_where_its_settings_say(
    tmp_path: Path, where: str, child: bool
) -> None:
    url = f"sqlite://{tmp_path}/hub.db"
    await migrate(url)
    settings = Settings(
        database_url=url,
        data_dir=tmp_path,
        log_key_file=tmp_path / "log.key",
        sqlite_integrator=where,
    )
    create_log_key(settings.log_key_path, settings.origin)
    hub = await Hub.start(settings, run_migrations=False)
    try:
        assert isinstance(hub.sequencer.integrator, SqliteIntegrator) is child
    finally:
        await hub.stop()
