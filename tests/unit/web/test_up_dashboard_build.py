"""`regimelab up` builds the dashboard's static export when needed, and says how to get
Node.js when it is missing; a failed build never stops the API."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import api.server.web as web
from api.cli.server import _build_dashboard
from engine.settings import Settings

FAKE_NPM = """#!/bin/sh
echo "npm $*" >> "$(dirname "$0")/calls"
if [ "$1" = "ci" ]; then mkdir -p node_modules && touch node_modules/.package-lock.json; fi
if [ "$1" = "run" ]; then
  [ -n "$FAIL_BUILD" ] && exit 3
  [ "$REGIMELAB_WEB_EXPORT" = "1" ] || exit 4
  mkdir -p out && echo '<html>built</html>' > out/index.html
fi
exit 0
"""


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def web_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "web"
    (folder / "app").mkdir(parents=True)
    (folder / "app" / "page.tsx").write_text("export default 1")
    (folder / "package.json").write_text("{}")
    (folder / "package-lock.json").write_text("{}")
    monkeypatch.setattr(web, "WEB_DIR", folder)
    return folder


@pytest.fixture
def fake_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _executable(bin_dir / "npm", FAKE_NPM)
    _executable(bin_dir / "node", "#!/bin/sh\nexit 0\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    return bin_dir


def _settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state")


def test_builds_on_first_run_then_not_again(
    web_dir: Path, fake_node: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _build_dashboard(_settings(tmp_path))
    assert (web_dir / "out" / "index.html").read_text() == "<html>built</html>\n"
    assert (fake_node / "calls").read_text().splitlines() == [
        "npm ci --no-audit",
        "npm run build:export",
    ]
    err = capsys.readouterr().err
    assert "npm ci" in err and "static export" in err and "done in" in err

    _build_dashboard(_settings(tmp_path))  # up to date: nothing to do
    assert len((fake_node / "calls").read_text().splitlines()) == 2
    assert capsys.readouterr().err == ""


def test_without_node_says_how_to_get_it(
    web_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    _build_dashboard(_settings(tmp_path))
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert "Node.js" in lines[0] and "nodejs.org" in lines[0] and "API only" in lines[0]
    assert not (web_dir / "out").exists()


def test_a_failed_build_leaves_the_api_running(
    web_dir: Path,
    fake_node: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FAIL_BUILD", "1")
    _build_dashboard(_settings(tmp_path))  # no exception
    err = capsys.readouterr().err
    assert "failed (exit 3)" in err and "web-build.log" in err
