"""`.env` (secrets) stays out of git, out of Docker build contexts and out of AI tools;
`.env.example` (documentation, no secrets) stays in."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from engine.settings import PROJECT_ROOT

SECRET_FILES = [".env", ".env.local", ".env.production"]
IGNORE_FILES = [
    ".gitignore",
    ".dockerignore",
    "web/.dockerignore",
    ".aiignore",  # JetBrains AI Assistant
    ".aiexclude",  # Gemini Code Assist / Android Studio
    ".cursorignore",  # Cursor
    ".claudeignore",  # Claude Code
]


def _patterns(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


@pytest.mark.parametrize("name", IGNORE_FILES)
def test_every_ignore_file_excludes_dot_env(name: str) -> None:
    patterns = _patterns(PROJECT_ROOT / name)

    assert ".env" in patterns, name
    assert ".env.*" in patterns, name  # .env.local, .env.production, ...


def test_the_web_image_has_its_own_build_context() -> None:
    # web/.dockerignore only matters if web/ is built as its own context
    assert (PROJECT_ROOT / "web" / "Dockerfile").is_file()
    assert "web" in _patterns(PROJECT_ROOT / ".dockerignore")  # the backend image skips it


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_ignores_env_files_but_not_the_example() -> None:
    if not (PROJECT_ROOT / ".git").exists():
        pytest.skip("not a git checkout")

    def ignored(name: str) -> bool:
        result = subprocess.run(
            ["git", "check-ignore", "--no-index", "-q", name],
            cwd=PROJECT_ROOT,
            check=False,
            capture_output=True,
        )
        assert result.returncode in (0, 1), result.stderr
        return result.returncode == 0

    for name in SECRET_FILES:
        assert ignored(name), name
    assert not ignored(".env.example")
    tracked = subprocess.run(
        ["git", "ls-files", "--", ".env", ".env.*"],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert set(tracked) <= {".env.example"}, tracked


def test_docker_contexts_keep_the_example_only_where_it_is_used() -> None:
    root = _patterns(PROJECT_ROOT / ".dockerignore")
    assert "!.env.example" in root  # documented in the image; never a real .env
