"""Run the `regimelab` console script as a user would: a real process, a private state
folder for its embedded servers, and helpers to check its one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REGIMELAB = str(Path(sys.executable).parent / "regimelab")


def cli_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        REGIMELAB_STATE_DIR=str(state_of(tmp_path)),
        REGIMELAB_ENV_FILE=str(tmp_path / "no.env"),
        REGIMELAB_LOG_LEVEL="WARNING",
    )
    env.update(overrides)
    return env


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [REGIMELAB, *args],
        check=False,
        env=cli_env(tmp_path, **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def state_of(tmp_path: Path) -> Path:
    """The embedded servers' state folder of a test (see the `state_dir` fixture)."""
    link = tmp_path / "state"
    return link.resolve()


@pytest.fixture(autouse=True)
def state_outside_basetemp(tmp_path: Path, state_dir: Path) -> None:
    (tmp_path / "state").symlink_to(state_dir, target_is_directory=True)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def error_after_progress(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a command that may have printed progress before failing."""
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == errors[0]
    return errors[0]
