"""Research sessions: the servers a notebook works against, configured or embedded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.io.embedded import EmbeddedPostgres, EmbeddedValkey
from engine.io.session import close_sessions, open_session
from engine.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def _closed() -> Iterator[None]:
    yield
    close_sessions()


def test_configured_urls_are_used_as_they_are(settings: Settings) -> None:
    session = open_session(settings)
    assert session.database_url == settings.database_url
    assert session.redis_url == settings.redis_url
    assert not session.endpoints.embedded_database
    assert session.describe().startswith("DATABASE_URL postgresql://")
    with session.connect() as conn:
        assert conn.execute("SELECT count(*) FROM bars").fetchone() == (0,)
    assert open_session(settings) is session  # one per process and configuration


def test_a_configured_database_must_be_migrated(empty_database_url: str, tmp_path: Path) -> None:
    settings = load_settings(
        env_file=tmp_path / "absent.env", environ={"DATABASE_URL": empty_database_url}
    )
    with pytest.raises(ConfigError, match="regimelab migrate"):
        open_session(settings)


@pytest.mark.slow
def test_embedded_servers_are_started_and_migrated(state_dir: Path, tmp_path: Path) -> None:
    settings = load_settings(
        env_file=tmp_path / "absent.env", environ={"REGIMELAB_STATE_DIR": str(state_dir)}
    )
    try:
        session = open_session(settings)
        assert session.endpoints.embedded_database and session.endpoints.embedded_cache
        assert session.describe() == "embedded PostgreSQL, embedded Redis (Valkey)"
        with session.connect() as conn:
            row = conn.execute("SELECT count(*) FROM _prisma_migrations").fetchone()
        assert row is not None and row[0] > 0
    finally:
        close_sessions()  # before `state_dir` is removed: the servers' pid files live there
    assert EmbeddedValkey(state_dir / "valkey").running_port() is None
    assert EmbeddedPostgres(state_dir / "postgres").running_port() is None
