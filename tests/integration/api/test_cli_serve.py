"""`regimelab serve --workers 2`: the production setting (granian processes) end to end."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from engine.io.api_keys import create_api_key, server_secret
from engine.settings import Settings
from tests.integration.api.cli_process import REGIMELAB, cli_env, state_outside_basetemp

__all__ = ["state_outside_basetemp"]  # the autouse fixture applies to this module


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _housekeeping_runs(metrics: str) -> float:
    counts = re.findall(
        r'^regimelab_job_duration_seconds_count\{job="housekeeping",[^}]*\} (\S+)$',
        metrics,
        flags=re.MULTILINE,
    )
    return sum(float(count) for count in counts)


@pytest.mark.slow
def test_two_workers_serve_schedule_and_stop_cleanly(settings: Settings, tmp_path: Path) -> None:
    assert settings.database_url is not None and settings.redis_url is not None
    assert settings.secret_key is not None
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        _, key = create_api_key(conn, "serve", "read", server_secret(settings))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    env = cli_env(
        tmp_path,
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        REGIMELAB_SECRET_KEY=settings.secret_key.reveal(),
        REGIMELAB_CACHE_PREFIX=settings.cache_prefix,
        REGIMELAB_SCHEDULER="true",
        REGIMELAB_LEADER_CHECK_SECONDS="1",
        REGIMELAB_SCHEDULES="housekeeping=every 1s",
        REGIMELAB_JOB_WORKERS="1",
        REGIMELAB_LOG_LEVEL="INFO",
    )
    with log.open("w") as sink:
        process = subprocess.Popen(
            [REGIMELAB, "serve", "--port", str(port), "--workers", "2"],
            env=env,
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        headers = {"X-API-Key": key}
        for _ in range(20):  # spread over both workers
            assert httpx.get(f"{url}/api/v1/jobs", headers=headers, timeout=10).status_code == 200
        while _housekeeping_runs(httpx.get(f"{url}/metrics", timeout=5).text) < 1:
            assert time.monotonic() < deadline + 30, log.read_text()
            time.sleep(0.2)
        metrics = httpx.get(f"{url}/metrics", timeout=5).text
        # the figures are summed over the workers: all 20 API requests are counted
        served = re.findall(
            r'^regimelab_http_request_duration_seconds_count\{method="GET",'
            r'route="/api/v1/jobs",status="200"\} (\S+)$',
            metrics,
            flags=re.MULTILINE,
        )
        assert sum(float(count) for count in served) >= 20
        # JSON log lines with request ids (not a terminal, so `auto` means json)
        assert re.search(r'"request_id": "[0-9a-f]{32}"', log.read_text()), log.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)

    assert code == 0, log.read_text()
