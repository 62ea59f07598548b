"""`regimelab backup PATH` and `regimelab restore PATH [--replace]` as a user runs them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.integration.api.cli_process import (
    error_after_progress,
    one_error_line,
    run_cli,
    state_outside_basetemp,
)

__all__ = ["state_outside_basetemp"]  # the autouse fixture applies to this module

pytestmark = pytest.mark.slow  # eight commands, each starting the embedded servers


def test_backup_then_restore_over_the_embedded_database(tmp_path: Path) -> None:
    assert (
        run_cli(tmp_path, "notes", "add", "--title", "Kept", "--body", "in the backup").returncode
        == 0
    )

    backup = run_cli(tmp_path, "backup", "saved")
    assert backup.returncode == 0, backup.stderr
    assert "backed up" in backup.stderr and "(1 rows" in backup.stderr
    assert (tmp_path / "saved" / "manifest.json").is_file()

    refused = error_after_progress(run_cli(tmp_path, "restore", "saved"))
    assert "already holds data" in refused and "--replace" in refused

    run_cli(tmp_path, "notes", "add", "--title", "Later", "--body", "not in the backup")
    replaced = run_cli(tmp_path, "restore", "saved", "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert "restored" in replaced.stderr
    listed = run_cli(tmp_path, "notes", "list").stdout
    assert "Kept" in listed and "Later" not in listed

    assert "no backup at" in one_error_line(run_cli(tmp_path, "restore", "nowhere"))
    shutil.rmtree(tmp_path / "saved" / "tables")
    assert "missing" in error_after_progress(run_cli(tmp_path, "restore", "saved", "--replace"))
    (tmp_path / "a-file").write_text("x")
    assert "is a file" in error_after_progress(run_cli(tmp_path, "backup", "a-file"))
