"""Dependencies of the job routes."""

from __future__ import annotations

from litestar.datastructures import State

from api.domain.jobs.services import JobService

__all__ = ["provide_job_service"]


def provide_job_service(state: State) -> JobService:
    """The job service over this replica's pool, job runner and scheduler."""
    return JobService(state.db_pool, state.job_runner, state.scheduler)
