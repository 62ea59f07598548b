"""Job routes: run history and status, schedules, run-now."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Response, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException, PermissionDeniedException, ValidationException
from litestar.openapi.spec import Operation, RequestBody
from litestar.params import BodyKwarg, FromPath, FromQuery, QueryParameter
from litestar.types import ControllerRouterHandler

from api.domain.jobs.deps import provide_job_service
from api.domain.jobs.schemas import (
    JOB_NAME_PATTERN,
    JobRun,
    JobSchedule,
    JobScheduleUpdate,
    RunStatus,
)
from api.domain.jobs.services import JobService
from api.lib.auth import requires
from api.lib.jobs import JobAccepted, Trigger, accepted
from api.lib.pagination import Page, Pagination

__all__ = ["ROUTES", "JobController"]

JobFilter = Annotated[
    str | None, QueryParameter(description="only runs of this job", pattern=JOB_NAME_PATTERN)
]
ScheduleChange = Annotated[JobScheduleUpdate, BodyKwarg(media_type=RequestEncodingType.JSON)]
RunParams = Annotated[
    dict[str, Any] | None,
    BodyKwarg(
        media_type=RequestEncodingType.JSON,
        description="parameters of this run, over the schedule's (checked against the job's)",
    ),
]
Service = NamedDependency[JobService]


@dataclass
class _OptionalBody(Operation):
    """An operation whose JSON body may be left out (Litestar marks every body required)."""

    def __post_init__(self) -> None:
        if isinstance(self.request_body, RequestBody):
            self.request_body.required = False


class JobController(Controller):
    """Long work as jobs: what ran, how it went, when it runs next, and run it now."""

    path = "/jobs"
    tags = ["jobs"]  # noqa: RUF012  (Litestar declares it as a plain attribute)
    dependencies = {"job_service": Provide(provide_job_service, sync_to_thread=False)}  # noqa: RUF012

    @get("/", operation_id="listJobRuns", summary="Job run history, newest first")
    async def list_runs(
        self,
        job_service: Service,
        page: NamedDependency[Pagination],
        job: JobFilter = None,
        status: FromQuery[RunStatus | None] = None,
        trigger: FromQuery[Trigger | None] = None,
    ) -> Page[JobRun]:
        """Runs of every job (or of one job, status or trigger), newest first."""
        return await job_service.runs(page, job=job, status=status, trigger=trigger)

    @get(
        "/{job_id:int}",
        operation_id="getJobRun",
        summary="One job run: status, progress, result or error",
        raises=[NotFoundException],
    )
    async def get_run(self, job_service: Service, job_id: FromPath[int]) -> JobRun:
        """Poll this after a 202: `status` ends as succeeded (with `result`) or failed."""
        return await job_service.run(job_id)

    @get("/schedules", operation_id="listJobSchedules", summary="Every job and its schedule")
    async def list_schedules(self, job_service: Service) -> list[JobSchedule]:
        """Each registered job with its effective trigger and where it was set."""
        return await job_service.schedules()

    @put(
        "/schedules/{name:str}",
        operation_id="updateJobSchedule",
        summary="Change a job's schedule (admin)",
        guards=[requires("admin")],
        raises=[NotFoundException, PermissionDeniedException, ValidationException],
    )
    async def update_schedule(
        self, job_service: Service, name: FromPath[str], data: ScheduleChange
    ) -> JobSchedule:
        """Store a trigger, on/off switch or params in the schedules table (overrides all)."""
        return await job_service.update_schedule(name, data)

    @post(
        "/schedules/{name:str}/run",
        operation_id="runJob",
        summary="Run a job now (202: poll the returned status_url)",
        guards=[requires("write")],
        raises=[NotFoundException, PermissionDeniedException, ValidationException],
        status_code=202,
        operation_class=_OptionalBody,
    )
    async def run_now(
        self, job_service: Service, name: FromPath[str], data: RunParams = None
    ) -> Response[JobAccepted]:
        """Queue a run of job `name` now, whatever its schedule."""
        return accepted(await job_service.run_now(name, data), name)


ROUTES: list[ControllerRouterHandler] = [JobController]
