"""A replica killed while it runs a backtest job: the run does not stay "running" forever.

The next replica to start (or any replica's housekeeping) finds the run's lease free and
marks it failed, saying the process running it stopped; a new submission then runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from engine.ingest.service import build_request, run_ingest
from engine.io.api_keys import create_api_key, server_secret
from engine.io.job_leases import ORPHAN_ERROR
from engine.settings import Settings
from tests.integration.api.lib.test_scheduler import Replica

SWEEP: dict[str, Any] = {
    "spec": {"strategy": "sma_crossover", "symbols": [f"SYN{i:04d}" for i in range(60)]},
    "grid": {"fast": list(range(5, 65, 4)), "slow": list(range(80, 320, 16))},
}


def _job(api: httpx.Client, job_id: int) -> dict[str, Any]:
    return dict(api.get(f"/api/v1/jobs/{job_id}").json())


def _until(check: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def replicas(tmp_path: Path, settings: Settings) -> Iterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for replica in started:
        replica.stop()


@pytest.mark.slow
def test_a_killed_replicas_job_is_marked_failed_when_another_starts(
    tmp_path: Path, settings: Settings, replicas: list[Replica]
) -> None:
    assert settings.database_url is not None
    run_ingest(
        settings,
        build_request("synthetic", "60", options={"n_days": 2520}),
        database_url=settings.database_url,
        redis_url=settings.redis_url,
    )
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        _, key = create_api_key(conn, "faults", "admin", server_secret(settings))
    headers = {"Authorization": f"Bearer {key}"}

    first = Replica(tmp_path, settings)
    replicas.append(first)
    _until(first.role, "the first replica")
    with httpx.Client(base_url=first.url, headers=headers, timeout=30) as api:
        accepted = api.post("/api/v1/backtests", json=SWEEP)
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]
        _until(lambda: _job(api, job_id)["status"] == "running", "the sweep to start")
    first.kill()  # SIGKILL: the server and its job workers, mid-sweep

    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute("SELECT status::text FROM job_runs WHERE id = %s", (job_id,)).fetchone()
    assert row == ("running",)  # nobody said otherwise: the process just vanished

    second = Replica(tmp_path, settings)
    replicas.append(second)
    _until(second.role, "the second replica")
    with httpx.Client(base_url=second.url, headers=headers, timeout=30) as api:
        run = _until(
            lambda: (job := _job(api, job_id))["status"] == "failed" and job,
            "the orphaned run to be failed",
            timeout=15,
        )
        assert run["error"] == ORPHAN_ERROR
        assert run["finished_at"] is not None

        # the survivor runs new work, and its own runs are never taken for orphans
        small = {"spec": {"strategy": "sma_crossover", "symbols": ["SYN0001"]}}
        again = api.post("/api/v1/backtests", json=small).json()["job_id"]
        done = _until(
            lambda: (job := _job(api, again))["status"] in ("succeeded", "failed") and job,
            "the new backtest",
        )
        assert done["status"] == "succeeded", done
