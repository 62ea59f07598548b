"""Embedded servers: start, attach from a second handle, adopt after the owner died, stop."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
import redis

from engine.errors import CacheUnavailableError, ConfigError, DatabaseUnavailableError
from engine.io.cache import check_cache
from engine.io.db import check_database
from engine.io.embedded import EmbeddedPostgres, EmbeddedValkey

DEAD_PID = 2**22 + 12345  # above Linux's default pid_max: never a live process


def test_postgres_second_handle_attaches_and_only_the_owner_stops(state_dir: Path) -> None:
    owner = EmbeddedPostgres(state_dir / "pg", durable=False)
    url = owner.start_or_attach()
    try:
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE kept (x int)")
            conn.execute("INSERT INTO kept VALUES (42)")
        visitor = EmbeddedPostgres(state_dir / "pg", durable=False)
        assert visitor.start_or_attach() == url
        assert not visitor.owned
        visitor.stop()  # not the owner: the server keeps running
        assert check_database(url) >= 0
    finally:
        owner.stop()
    assert owner.running_port() is None
    with pytest.raises(DatabaseUnavailableError, match="cannot connect to PostgreSQL"):
        check_database(url, timeout=1)

    again = EmbeddedPostgres(state_dir / "pg", durable=False)  # a restart reuses the data
    url = again.start_or_attach()
    try:
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT x FROM kept").fetchone() == (42,)
            assert conn.execute(
                "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
            ).fetchone()
    finally:
        again.stop()


def test_postgres_left_by_a_dead_owner_is_adopted(state_dir: Path) -> None:
    first = EmbeddedPostgres(state_dir / "pg", durable=False)
    first.start_or_attach()
    try:
        (state_dir / "pg" / "owner.json").write_text(json.dumps({"pid": DEAD_PID}))
        heir = EmbeddedPostgres(state_dir / "pg", durable=False)
        heir.start_or_attach()
        assert heir.owned
        heir.stop()
        assert heir.running_port() is None
    finally:
        first.owned = True
        first.stop()


def test_valkey_attach_adopt_and_stop(state_dir: Path) -> None:
    owner = EmbeddedValkey(state_dir / "valkey")
    url = owner.start_or_attach()
    try:
        redis.Redis.from_url(url).set("k", "v")
        visitor = EmbeddedValkey(state_dir / "valkey")
        assert visitor.start_or_attach() == url
        assert not visitor.owned
        visitor.stop()
        assert redis.Redis.from_url(url).get("k") == b"v"

        (state_dir / "valkey" / "owner.json").write_text(json.dumps({"pid": DEAD_PID}))
        heir = EmbeddedValkey(state_dir / "valkey")
        heir.start_or_attach()
        assert heir.owned
        heir.stop()
    finally:
        owner.stop()
    with pytest.raises(CacheUnavailableError, match="cannot connect to Redis"):
        check_cache(url, timeout=0.5)


def test_bad_urls_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="must start with postgresql://"):
        check_database("mysql://x@y/z")
    with pytest.raises(ConfigError, match="not a valid PostgreSQL URL"):
        check_database("postgresql://u@h:notaport/db")
    with pytest.raises(DatabaseUnavailableError) as caught:
        check_database("postgresql://u:topsecret@127.0.0.1:1/db", timeout=1)
    assert "topsecret" not in str(caught.value)
    assert "\n" not in str(caught.value)
    with pytest.raises(ConfigError, match="REDIS_URL must start with"):
        check_cache("http://cache:6379")
