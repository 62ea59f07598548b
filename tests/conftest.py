"""Real PostgreSQL (+pgvector) and Redis for every test.

- PostgreSQL: `TEST_DATABASE_URL` (a server with pgvector) when set, else an embedded
  PostgreSQL 18 started once per session. Migrations are applied once to a template
  database; each test gets its own database cloned from it, dropped afterwards.
- Redis: `REDIS_URL` when set, else an embedded Valkey started once per session. Each test
  gets its own key prefix, and its keys are deleted afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg import sql

from engine.io.db import with_database
from engine.io.embedded import EmbeddedPostgres, EmbeddedValkey
from engine.io.http import reset_circuits
from engine.io.migrate import apply_migrations
from engine.settings import PROJECT_ROOT, Settings, load_settings

MIGRATIONS = PROJECT_ROOT / "prisma" / "migrations"
TEMPLATE_DB = "regimelab_test_template"


def _private_folder() -> Iterator[Path]:
    # Not under pytest's basetemp: pytest makes /tmp/pytest-of-<user> private whenever a
    # session starts, which would lock the unprivileged PostgreSQL user out of its data.
    path = Path(tempfile.mkdtemp(prefix="regimelab-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def _closed_circuits() -> None:
    """Provider circuits are per process: a test's failing provider must not open the
    next test's circuit."""
    reset_circuits()


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """A state folder for embedded servers a test starts itself."""
    yield from _private_folder()


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of a PostgreSQL server with pgvector (any database on it)."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    for folder in _private_folder():
        server = EmbeddedPostgres(folder / "postgres", durable=False)
        try:
            yield server.start_or_attach()
        finally:
            server.stop()


def _admin(server_url: str) -> psycopg.Connection:
    return psycopg.connect(with_database(server_url, "postgres"), autocommit=True)


def _drop(conn: psycopg.Connection, name: str) -> None:
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def template_database(pg_server_url: str) -> Iterator[str]:
    """Name of a database with every migration applied, cloned by each test."""
    with _admin(pg_server_url) as conn:
        _drop(conn, TEMPLATE_DB)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE_DB)))
    apply_migrations(with_database(pg_server_url, TEMPLATE_DB), MIGRATIONS)
    yield TEMPLATE_DB
    with _admin(pg_server_url) as conn:
        _drop(conn, TEMPLATE_DB)


def _fresh_database(server_url: str, template: str | None) -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex[:16]}"
    with _admin(server_url) as conn:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(statement)
    try:
        yield with_database(server_url, name)
    finally:
        with _admin(server_url) as conn:
            _drop(conn, name)


@pytest.fixture
def database_url(pg_server_url: str, template_database: str) -> Iterator[str]:
    """A migrated database of this test's own."""
    yield from _fresh_database(pg_server_url, template_database)


@pytest.fixture
def empty_database_url(pg_server_url: str) -> Iterator[str]:
    """An empty database (no migrations) of this test's own."""
    yield from _fresh_database(pg_server_url, None)


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    """A connection to this test's migrated database."""
    with psycopg.connect(database_url) as conn:
        yield conn


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """URL of a real Redis-protocol server."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured
        return
    for folder in _private_folder():
        server = EmbeddedValkey(folder / "valkey")
        try:
            yield server.start_or_attach()
        finally:
            server.stop()


@pytest.fixture
def cache_prefix(redis_server_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"regimelab-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_server_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def settings(
    database_url: str, redis_server_url: str, cache_prefix: str, tmp_path: Path
) -> Settings:
    """Settings pointing at this test's database, Redis prefix and state folder."""
    return load_settings(
        env_file=tmp_path / "absent.env",
        environ={
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_server_url,
            "REGIMELAB_CACHE_PREFIX": cache_prefix,
            "REGIMELAB_STATE_DIR": str(tmp_path / "state"),
            "REGIMELAB_SECRET_KEY": f"test-secret-{uuid.uuid4().hex}",
            # tests that exercise the scheduler turn it on themselves
            "REGIMELAB_SCHEDULER": "false",
            "REGIMELAB_LOG_FORMAT": "text",
        },
    )
