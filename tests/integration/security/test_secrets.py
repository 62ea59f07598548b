"""Secrets never reach a response body or a log line: the server secret, the SMTP password,
provider API keys, API keys themselves, webhook secrets and the database password."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

import engine.io.targets
from api.lib.logs import JsonFormatter
from api.server.app import create_app
from engine.io.api_keys import create_api_key, server_secret
from engine.settings import Settings, load_settings
from tests.integration.api.conftest import ServeApi

SECRETS = {
    "REGIMELAB_SECRET_KEY": "server-secret-7f3a9c1e5b2d4f6a8c0e",
    "REGIMELAB_SMTP_PASSWORD": "smtp-password-2b4d6f8a0c",
    "FRED_API_KEY": "fred-key-9e8d7c6b5a",
    "POLYGON_API_KEY": "polygon-key-1a2b3c4d5e",
    "ALPACA_API_SECRET_KEY": "alpaca-secret-6f5e4d3c2b",
}
DB_PASSWORD = "db-password-0a1b2c3d4e"
WEBHOOK_SECRET = "webhook-secret-5c6d7e8f9a"


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username or 'postgres'}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
def secret_settings(settings: Settings, tmp_path: Path) -> Settings:
    """Settings with every secret set, and a database URL carrying a password (the
    embedded server trusts local connections, so the password is only carried along)."""
    assert settings.database_url is not None
    return load_settings(
        env_file=tmp_path / "absent.env",
        environ={
            "DATABASE_URL": _with_password(settings.database_url, DB_PASSWORD),
            "REDIS_URL": settings.redis_url or "",
            "REGIMELAB_CACHE_PREFIX": settings.cache_prefix,
            "REGIMELAB_STATE_DIR": str(tmp_path / "state"),
            "REGIMELAB_SCHEDULER": "false",
            "REGIMELAB_SMTP_HOST": "127.0.0.1",
            "REGIMELAB_SMTP_PORT": "1",
            "REGIMELAB_SMTP_USER": "alerts",
            **SECRETS,
        },
    )


def test_no_secret_reaches_a_body_or_a_log_line(
    secret_settings: Settings, serve_api: ServeApi, caplog: pytest.LogCaptureFixture
) -> None:
    assert secret_settings.database_url is not None
    with psycopg.connect(secret_settings.database_url, autocommit=True) as conn:
        _, key = create_api_key(conn, "probe", "admin", server_secret(secret_settings))
    forbidden = [*SECRETS.values(), DB_PASSWORD, WEBHOOK_SECRET, key]
    bodies: list[str] = []
    caplog.set_level(logging.DEBUG)
    down = dataclasses.replace(secret_settings, connect_timeout=1.0)
    with (
        serve_api(create_app(secret_settings)) as url,
        httpx.Client(base_url=url, timeout=30, headers={"X-API-Key": key}) as api,
    ):
        rule = {
            "name": "with-secret",
            "condition": {"kind": "threshold", "feature": "close", "op": "below", "value": 1},
            "symbols": ["SPX"],
            "channels": [
                {"type": "webhook", "url": "https://hooks.example.com/x", "secret": WEBHOOK_SECRET},
                {"type": "email", "to": ["ops@example.com"]},
            ],
        }
        original = engine.io.targets.resolve_host
        engine.io.targets.resolve_host = lambda host: ["93.184.215.14"]
        try:
            created = api.post("/api/v1/alerts/rules", json=rule)
        finally:
            engine.io.targets.resolve_host = original
        assert created.status_code == 201, created.text
        rule_id = created.json()["id"]
        responses = [
            created,
            api.get(f"/api/v1/alerts/rules/{rule_id}"),
            api.get("/api/v1/alerts/rules"),
            api.post(f"/api/v1/alerts/rules/{rule_id}/test"),  # webhook + SMTP fail
            api.get("/api/v1/providers"),
            api.get("/api/v1/jobs"),
            api.get("/api/v1/instruments/NOPE/bars"),
            api.get("/api/v1/jobs", params={"limit": 0}),
            api.post("/api/v1/ingest", json={"provider": "fred", "symbols": ["X"]}),
            httpx.get(f"{url}/api/v1/jobs", headers={"Authorization": f"Bearer {key}x"}),
            httpx.get(f"{url}/health"),
            httpx.get(f"{url}/ready"),
            httpx.get(f"{url}/schema/openapi.json"),
        ]
        bodies += [r.text for r in responses]
    broken = _with_password("postgresql://nobody@127.0.0.1:1/none", DB_PASSWORD)
    with serve_api(create_app(down, database_url=broken)) as url:
        unavailable = httpx.get(f"{url}/api/v1/jobs", headers={"X-API-Key": key}, timeout=30)
        assert unavailable.status_code == 503
        bodies += [unavailable.text, httpx.get(f"{url}/health", timeout=30).text]

    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    assert lines, "the server logged nothing to check"
    assert repr(secret_settings).count(DB_PASSWORD) == 0
    for secret in forbidden:
        assert not [b for b in bodies if secret in b], secret[:12]
        assert not [line for line in lines if secret in line], secret[:12]
