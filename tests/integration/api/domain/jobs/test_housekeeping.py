"""Housekeeping, called as the plain function it is: old runs go, stuck and orphaned runs
fail (orphaned: no live replica holds their lease)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from api.domain.system.jobs import HousekeepingParams, housekeeping
from api.lib.jobs import JobContext, JobEnv
from engine.io.job_leases import LEASE_SPACE, ORPHAN_ERROR
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


@contextmanager
def _leases(url: str, *job_ids: int) -> Iterator[None]:
    """A live replica's session holding the leases of `job_ids`."""
    with psycopg.connect(url, autocommit=True) as holder:
        for job_id in job_ids:
            holder.execute("SELECT pg_advisory_lock(%s, %s)", (LEASE_SPACE, job_id))
        yield


def _errors(url: str, *job_ids: int) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT error FROM job_runs WHERE id = ANY(%s) ORDER BY id", (list(job_ids),)
        ).fetchall()
    return [str(row[0]) for row in rows]


def test_prunes_old_finished_runs_and_fails_stuck_and_orphaned_ones(settings: Settings) -> None:
    assert settings.database_url is not None
    url = settings.database_url
    with psycopg.connect(url, autocommit=True) as conn:
        old_done = _run(conn, "succeeded", "40 days")
        old_failed = _run(conn, "failed", "31 days")
        recent = _run(conn, "succeeded", "29 days")
        hung = _run(conn, "running", "7 hours", finished=False)  # leased, but for too long
        orphan_queued = _run(conn, "queued", "2 days", finished=False)  # nobody holds it
        orphan_running = _run(conn, "running", "1 minute", finished=False)
        busy = _run(conn, "running", "1 hour", finished=False)
        this_run = _run(conn, "running", "1 year", finished=False)

    env = JobEnv(settings, url, settings.redis_url)
    with _leases(url, hung, busy, this_run):
        summary = housekeeping(JobContext(this_run, env), HousekeepingParams())

    assert summary == {
        "job_runs_deleted": 2,
        "job_runs_marked_failed": 3,
        "orphaned_job_runs": [orphan_queued, orphan_running],
        "retention_days": 30,
    }
    with psycopg.connect(url) as conn:
        left = dict(conn.execute("SELECT id, status::text FROM job_runs").fetchall())
    assert old_done not in left and old_failed not in left
    assert left[recent] == "succeeded"
    assert left[hung] == left[orphan_queued] == left[orphan_running] == "failed"
    assert left[busy] == left[this_run] == "running"  # alive and not stuck; housekeeping itself
    assert _errors(url, hung)[0].startswith("stuck in running for over 6 h")
    assert _errors(url, orphan_queued, orphan_running) == [ORPHAN_ERROR] * 2


def test_params_override_retention_and_the_stuck_cutoff(settings: Settings) -> None:
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        _run(conn, "succeeded", "3 days")
        two_hours = _run(conn, "running", "2 hours", finished=False)
        this_run = _run(conn, "running", "1 second", finished=False)

    env = JobEnv(settings, settings.database_url, settings.redis_url)
    params = HousekeepingParams(retention_days=2, stuck_after_hours=1.5)
    with _leases(settings.database_url, two_hours, this_run):
        summary = housekeeping(JobContext(this_run, env), params)

    assert summary == {
        "job_runs_deleted": 1,
        "job_runs_marked_failed": 1,
        "orphaned_job_runs": [],
        "retention_days": 2,
    }
