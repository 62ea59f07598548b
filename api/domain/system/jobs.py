"""Jobs of this domain (registered with `api.lib.jobs.job`): housekeeping."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from api.lib.jobs import JobContext, job
from engine.io.db import connect
from engine.io.job_leases import reap_orphans

__all__ = ["HousekeepingParams", "housekeeping"]


class HousekeepingParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What housekeeping removes and what it considers stuck."""

    retention_days: Annotated[int, msgspec.Meta(ge=1, le=36_500)] | None = None
    """Days of finished job runs to keep (default: REGIMELAB_JOB_RETENTION_DAYS)."""
    stuck_after_hours: Annotated[float, msgspec.Meta(gt=0, le=8_760)] = 6.0
    """Hours after which a queued or running job run counts as stuck."""


@job("housekeeping", params=HousekeepingParams, schedule="every 6h")
def housekeeping(ctx: JobContext, params: HousekeepingParams) -> dict[str, Any]:
    """Prune old job runs and fail runs stuck in queued or running (their replica died).

    Redis needs nothing here: every cached value carries a TTL, and the data-version
    counters must persist.
    """
    retention_days = params.retention_days or ctx.settings.job_retention_days
    with connect(ctx.database_url, timeout=ctx.settings.connect_timeout) as conn:
        orphaned = reap_orphans(conn)  # their replica died: its leases are free
        stuck = conn.execute(
            "UPDATE job_runs SET status = 'failed', finished_at = now(), "
            "error = format('stuck in %%s for over %%s h: the replica running it probably "
            "stopped; marked failed by housekeeping', status, %s::text) "
            "WHERE status IN ('queued', 'running') AND id <> %s "
            "AND coalesce(started_at, created_at) < now() - make_interval(secs => %s)",
            (f"{params.stuck_after_hours:g}", ctx.job_id, params.stuck_after_hours * 3_600),
        ).rowcount
        pruned = conn.execute(
            "DELETE FROM job_runs WHERE status IN ('succeeded', 'failed', 'cancelled') "
            "AND coalesce(finished_at, created_at) < now() - make_interval(days => %s)",
            (retention_days,),
        ).rowcount
        conn.commit()
    return {
        "job_runs_deleted": pruned,
        "job_runs_marked_failed": stuck + len(orphaned),
        "orphaned_job_runs": orphaned,
        "retention_days": retention_days,
    }
