"""`regimelab api-keys` as a user runs it: the key is printed once, alone, last."""

from __future__ import annotations

from pathlib import Path

import psycopg

from engine.io.api_keys import digest
from tests.integration.api.cli_process import (
    one_error_line,
    run_cli,
    state_of,
    state_outside_basetemp,
)

__all__ = ["state_outside_basetemp"]  # the autouse fixture applies to this module


def test_create_list_and_revoke_a_key(tmp_path: Path, database_url: str) -> None:
    secret = "x" * 32
    env = {"DATABASE_URL": database_url, "REGIMELAB_SECRET_KEY": secret}

    created = run_cli(
        tmp_path, "api-keys", "create", "--name", "ci", "--scopes", "read,write", **env
    )

    assert created.returncode == 0, created.stderr
    key = created.stdout.splitlines()[-1]
    assert created.stdout == key + "\n"  # the key, alone
    assert key.startswith("rl_") and "shown once" in created.stderr
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT key_hash, scopes FROM api_keys WHERE name = 'ci'").fetchone()
    assert row == (digest(key, secret.encode()), ["read", "write"])

    listed = run_cli(tmp_path, "api-keys", "list", **env)
    assert listed.returncode == 0 and "ci" in listed.stdout and key not in listed.stdout

    revoked = run_cli(tmp_path, "api-keys", "revoke", "ci", **env)
    assert revoked.returncode == 0, revoked.stderr
    with psycopg.connect(database_url) as conn:
        state = conn.execute("SELECT revoked_at IS NOT NULL FROM api_keys").fetchone()
    assert state == (True,)


def test_bad_scopes_and_unknown_keys_are_one_clear_line(tmp_path: Path, database_url: str) -> None:
    env = {"DATABASE_URL": database_url, "REGIMELAB_SECRET_KEY": "y" * 32}
    bad = run_cli(tmp_path, "api-keys", "create", "--name", "x", "--scopes", "root", **env)
    assert "unknown scope(s) ['root']" in one_error_line(bad)
    missing = run_cli(tmp_path, "api-keys", "revoke", "nope", **env)
    assert "no API key named 'nope'" in one_error_line(missing)
    unset = run_cli(tmp_path, "api-keys", "create", "--name", "x", DATABASE_URL=database_url)
    assert "REGIMELAB_SECRET_KEY is not set" in one_error_line(unset)


def test_the_embedded_setup_needs_no_secret(tmp_path: Path) -> None:
    created = run_cli(tmp_path, "api-keys", "create", "--name", "local")
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("rl_")
    assert (state_of(tmp_path) / "secret_key").exists()
