"""The app wires without touching a server: routes, operation ids, no deprecated patterns."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from litestar.exceptions import LitestarWarning

from api.server.app import create_app
from engine.errors import ConfigError
from engine.settings import Settings, load_settings

_NOWHERE = {
    "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "REGIMELAB_SECRET_KEY": "unit-test-secret-0123",
}


def _settings(tmp_path: Path, **extra: str) -> Settings:
    return load_settings(env_file=tmp_path / "absent.env", environ={**_NOWHERE, **extra})


def test_every_operation_has_a_unique_id_and_api_routes_need_a_key(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", LitestarWarning)
        warnings.simplefilter("error", DeprecationWarning)
        app = create_app(_settings(tmp_path))
        spec = app.openapi_schema.to_schema()

    ids = [
        operation["operationId"]
        for item in spec["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict) and "operationId" in operation
    ]
    assert len(ids) == len(set(ids)) > 30
    for path, item in spec["paths"].items():
        for operation in item.values():
            if isinstance(operation, dict) and "responses" in operation:
                needs_key = "security" in operation and operation["security"]
                assert bool(needs_key) == path.startswith("/api/"), path


def test_bad_schedule_setting_fails_at_creation(tmp_path: Path) -> None:
    settings = _settings(tmp_path, REGIMELAB_SCHEDULES="housekeeping=every banana")

    with pytest.raises(ConfigError, match="housekeeping"):
        create_app(settings)


def test_unknown_cached_route_fails_at_creation(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown route"):
        create_app(_settings(tmp_path, REGIMELAB_API_TTLS="nope=5"))
