"""Embedded servers started by a process that never runs its exit handlers (a marimo
kernel ends with os._exit) are stopped by the reaper once the process is gone."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.io.embedded import EmbeddedPostgres, EmbeddedValkey
from engine.io.reaper import reap

SCRIPT = """
import os, sys
from engine.io.session import open_session
from engine.settings import load_settings
settings = load_settings(env_file=None, environ={"REGIMELAB_STATE_DIR": sys.argv[1]})
session = open_session(settings)
assert session.endpoints.embedded_database and session.endpoints.embedded_cache
print(os.getpid(), flush=True)
os._exit(0)  # as a marimo kernel ends: no atexit handlers
"""


@pytest.mark.slow
def test_servers_of_a_vanished_notebook_are_stopped(state_dir: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(state_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,  # no .env here
    )
    assert result.returncode == 0, result.stderr
    postgres, valkey = (
        EmbeddedPostgres(state_dir / "postgres"),
        EmbeddedValkey(state_dir / "valkey"),
    )
    owners = [state_dir / "postgres" / "owner.json", state_dir / "valkey" / "owner.json"]
    deadline = time.monotonic() + 60
    while (
        postgres.running_port() is not None
        or valkey.running_port() is not None
        or any(owner.exists() for owner in owners)  # released once stopped
    ):
        assert time.monotonic() < deadline, "the embedded servers are still running"
        time.sleep(0.5)


def test_reap_leaves_servers_of_other_owners_alone(tmp_path: Path) -> None:
    assert reap(123456789, tmp_path) == []  # nothing runs there
    assert reap(1, tmp_path / "gone") == []
    assert not (tmp_path / "gone").exists()
