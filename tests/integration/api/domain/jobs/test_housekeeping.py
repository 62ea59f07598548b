"""Housekeeping, called as the plain function it is: old runs go, stuck runs fail."""

from __future__ import annotations

import psycopg

from api.domain.system.jobs import HousekeepingParams, housekeeping
from api.lib.jobs import JobContext, JobEnv
from engine.settings import Settings


def _run(conn: psycopg.Connection, status: str, age: str, *, finished: bool = True) -> int:
    """A run created (and started, maybe finished) `age` ago; its id."""
    row = conn.execute(
        "INSERT INTO job_runs (job_name, status, trigger, created_at, started_at, finished_at) "
        "VALUES ('ingest', %s, 'api', now() - %s::interval, now() - %s::interval, "
        "CASE WHEN %s THEN now() - %s::interval END) RETURNING id",
        (status, age, age, finished, age),
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_prunes_old_finished_runs_and_fails_stuck_ones(settings: Settings) -> None:
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        old_done = _run(conn, "succeeded", "40 days")
        old_failed = _run(conn, "failed", "31 days")
        recent = _run(conn, "succeeded", "29 days")
        stuck_running = _run(conn, "running", "7 hours", finished=False)
        stuck_queued = _run(conn, "queued", "2 days", finished=False)
        busy = _run(conn, "running", "1 hour", finished=False)
        this_run = _run(conn, "running", "1 year", finished=False)

    env = JobEnv(settings, settings.database_url, settings.redis_url)
    summary = housekeeping(JobContext(this_run, env), HousekeepingParams())

    assert summary == {"job_runs_deleted": 2, "job_runs_marked_failed": 2, "retention_days": 30}
    with psycopg.connect(settings.database_url) as conn:
        left = dict(conn.execute("SELECT id, status::text FROM job_runs").fetchall())
        error = conn.execute(
            "SELECT error FROM job_runs WHERE id = %s", (stuck_running,)
        ).fetchone()
    assert old_done not in left and old_failed not in left
    assert left[recent] == "succeeded"
    assert left[stuck_running] == left[stuck_queued] == "failed"
    assert left[busy] == left[this_run] == "running"  # not stuck yet; housekeeping itself
    assert error is not None
    assert error[0].startswith("stuck in running for over 6 h")


def test_params_override_retention_and_the_stuck_cutoff(settings: Settings) -> None:
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        _run(conn, "succeeded", "3 days")
        _run(conn, "running", "2 hours", finished=False)
        this_run = _run(conn, "running", "1 second", finished=False)

    env = JobEnv(settings, settings.database_url, settings.redis_url)
    params = HousekeepingParams(retention_days=2, stuck_after_hours=1.5)
    summary = housekeeping(JobContext(this_run, env), params)

    assert summary == {"job_runs_deleted": 1, "job_runs_marked_failed": 1, "retention_days": 2}
