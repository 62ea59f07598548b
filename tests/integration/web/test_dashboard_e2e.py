"""The dashboard end to end: `regimelab up` on the sample data, driven by Playwright in
headless Chromium (Debian's package, no browser download) through web/e2e/*.spec.ts.

Skipped with the reason when Node.js, the dashboard's packages or Chromium are missing,
unless REGIMELAB_REQUIRE_E2E=1 (CI), where a missing piece fails the test."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.server.web import WEB_DIR, build_needed
from tests.integration.api.cli_process import REGIMELAB, cli_env, run_cli, state_outside_basetemp

__all__ = ["state_outside_basetemp"]  # the autouse fixture applies to this module

SCREENSHOTS = WEB_DIR / "test-results" / "screenshots"
PLAYWRIGHT_SECONDS = 240


def _chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _missing() -> str | None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "Node.js with npm is not installed"
    if not (WEB_DIR / "node_modules" / "@playwright" / "test").is_dir():
        return "the dashboard's packages are not installed (npm ci --prefix web)"
    if _chromium() is None:
        return "Chromium is not installed (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def e2e_ready() -> str:
    """Chromium's path, with the production static export built."""
    reason = _missing()
    if reason is not None:
        if os.environ.get("REGIMELAB_REQUIRE_E2E") == "1":
            pytest.fail(f"REGIMELAB_REQUIRE_E2E=1 but {reason}")
        pytest.skip(reason)
    if build_needed(WEB_DIR):
        subprocess.run(
            ["npm", "run", "--silent", "build:export"],
            cwd=WEB_DIR,
            env={**os.environ, "REGIMELAB_WEB_EXPORT": "1", "NEXT_TELEMETRY_DISABLED": "1"},
            check=True,
            timeout=600,
        )
    chromium = _chromium()
    assert chromium is not None
    return chromium


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def up(tmp_path: Path, e2e_ready: str) -> Iterator[tuple[str, Path]]:
    """A `regimelab up` process on a free port: its URL and its log."""
    port = _free_port()
    log = tmp_path / "up.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [REGIMELAB, "up", "--port", str(port)],
            env=cli_env(tmp_path),
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise AssertionError(f"`up` exited early:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"`up` never became healthy:\n{log.read_text()}")
            time.sleep(0.25)
        yield url, log
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_dashboard_end_to_end(
    up: tuple[str, Path], e2e_ready: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, log = up
    # One URL serves the dashboard and the API; `up` prints it with a local key.
    page = httpx.get(f"{url}/", timeout=10)
    assert page.status_code == 200 and "<html" in page.text
    printed = re.search(rf"RegimeLab dashboard: {re.escape(url)}/#key=(rl_\S+)", log.read_text())
    assert printed is not None, log.read_text()

    created = run_cli(
        tmp_path, "api-keys", "create", "--name", "e2e", "--scopes", "read,write,admin"
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]

    env = {
        **os.environ,
        "REGIMELAB_E2E_BASE_URL": url,
        "REGIMELAB_E2E_API_KEY": key,
        "REGIMELAB_E2E_FRAGMENT_KEY": printed.group(1),
        "CHROMIUM_PATH": e2e_ready,
        "CI": "1",  # no interactive report server
    }
    started = time.monotonic()
    result = subprocess.run(
        ["npx", "--no-install", "playwright", "test"],
        cwd=WEB_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=PLAYWRIGHT_SECONDS,
        check=False,
    )
    figures = [
        line
        for line in result.stdout.splitlines()
        if line.startswith(("overview first load:", "screenshot:"))
    ]
    with capsys.disabled():
        print(f"\nPlaywright: {time.monotonic() - started:.0f} s")
        for line in figures:
            print(line)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    for name in ("overview", "instrument", "backtests", "alerts", "data", "settings-dark"):
        assert (SCREENSHOTS / f"{name}.png").is_file(), name
