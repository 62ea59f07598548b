"""API keys in real Postgres: digests only at rest, scopes, revocation, the server secret."""

from __future__ import annotations

import stat
from pathlib import Path

import psycopg
import pytest

from engine.errors import ConfigError
from engine.io.api_keys import (
    create_api_key,
    digest,
    list_api_keys,
    revoke_api_key,
    server_secret,
    verify_api_key,
)
from engine.settings import load_settings

SECRET = b"a-test-server-secret-of-some-length"


def test_a_key_is_shown_once_and_only_its_digest_is_stored(db: psycopg.Connection) -> None:
    record, key = create_api_key(db, "ci", "read,write", SECRET)

    assert key.startswith(f"rl_{record.prefix}_") and len(key) > 40
    assert record.scopes == ("read", "write")
    stored = db.execute("SELECT row_to_json(k)::text FROM api_keys k").fetchone()
    assert stored is not None
    assert key not in stored[0] and key.split("_")[-1] not in stored[0]
    assert digest(key, SECRET) in stored[0]


def test_verify_finds_live_keys_and_records_their_use(db: psycopg.Connection) -> None:
    record, key = create_api_key(db, "reader", ["read"], SECRET)

    found = verify_api_key(db, key, SECRET)

    assert found is not None and found.id == record.id and found.last_used_at is not None
    assert found.allows("read") and not found.allows("write") and not found.allows("admin")
    assert verify_api_key(db, key + "x", SECRET) is None
    assert verify_api_key(db, key, b"another-secret-entirely") is None
    assert verify_api_key(db, "Bearer nonsense", SECRET) is None


def test_admin_implies_write_implies_read(db: psycopg.Connection) -> None:
    record, _ = create_api_key(db, "root", "admin", SECRET)
    assert record.allows("read") and record.allows("write") and record.allows("admin")


def test_a_revoked_key_stops_working_and_stays_listed(db: psycopg.Connection) -> None:
    _, key = create_api_key(db, "old", "write", SECRET)

    revoked = revoke_api_key(db, "old")
    again = revoke_api_key(db, "old")  # idempotent

    assert revoked.revoked_at is not None and again.revoked_at == revoked.revoked_at
    assert not revoked.allows("read")
    assert verify_api_key(db, key, SECRET) is None
    assert [k.name for k in list_api_keys(db)] == ["old"]


@pytest.mark.parametrize(
    ("name", "scopes", "message"),
    [
        ("x", "read,root", r"unknown scope\(s\) \['root'\]"),
        ("x", " , ", "give at least one scope"),
        ("  ", "read", "needs a name"),
    ],
)
def test_bad_keys_are_clear_errors(
    db: psycopg.Connection, name: str, scopes: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        create_api_key(db, name, scopes, SECRET)


def test_names_are_unique_and_unknown_names_cannot_be_revoked(db: psycopg.Connection) -> None:
    create_api_key(db, "twice", "read", SECRET)
    db.commit()
    with pytest.raises(ConfigError, match="named 'twice' exists already"):
        create_api_key(db, "twice", "read", SECRET)
    db.rollback()
    with pytest.raises(ConfigError, match="no API key named 'nope'"):
        revoke_api_key(db, "nope")


def test_the_server_secret_comes_from_settings_or_the_embedded_state(tmp_path: Path) -> None:
    configured = load_settings(
        env_file=tmp_path / "absent.env",
        environ={"REGIMELAB_SECRET_KEY": "s" * 32, "DATABASE_URL": "postgresql://h/db"},
    )
    assert server_secret(configured) == b"s" * 32

    shared_db = load_settings(
        env_file=tmp_path / "absent.env", environ={"DATABASE_URL": "postgresql://h/db"}
    )
    with pytest.raises(ConfigError, match="REGIMELAB_SECRET_KEY is not set"):
        server_secret(shared_db)

    embedded = load_settings(
        env_file=tmp_path / "absent.env", environ={"REGIMELAB_STATE_DIR": str(tmp_path / "st")}
    )
    first = server_secret(embedded)
    assert server_secret(embedded) == first and len(first) >= 32
    mode = (tmp_path / "st" / "secret_key").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
