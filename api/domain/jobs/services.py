"""Job runs and schedules: reads of `job_runs`, edits of `job_schedules`, run-now."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import msgspec
from anyio import to_thread
from litestar.exceptions import NotFoundException, ValidationException
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from api.domain.jobs.schemas import (
    JOB_NAME_PATTERN,
    JobRun,
    JobSchedule,
    JobScheduleUpdate,
    RunStatus,
)
from api.lib.jobs import JobDefinition, JobRunner, Trigger
from api.lib.pagination import Page, Pagination
from api.lib.scheduler import (
    InvalidTriggerError,
    Schedule,
    Scheduler,
    effective_schedules,
    next_fire_time,
    normalize_trigger,
    parse_trigger,
    read_schedule_rows,
)

__all__ = ["JobService"]

_MAX_ID: Final = 2**63 - 1  # job_runs.id is a bigint
_MAX_PARAM_DEPTH: Final = 16
_JOB_NAME: Final = re.compile(JOB_NAME_PATTERN)
_ERROR_PATH: Final = re.compile(r" - at `\$\.?([^`]*)`$")
_RUN_COLUMNS: Final = (
    "id, job_name, trigger, status::text, progress, params, result, error, slot_key, "
    "created_at, started_at, finished_at"
)
_RUN_FILTER: Final = (
    "WHERE (%(job)s::text IS NULL OR job_name = %(job)s::text) "
    "AND (%(status)s::run_status IS NULL OR status = %(status)s::run_status) "
    "AND (%(trigger)s::text IS NULL OR trigger = %(trigger)s::text)"
)


class JobService:
    """What the job routes do, over the API's pool, job runner and scheduler."""

    def __init__(self, pool: AsyncConnectionPool, runner: JobRunner, scheduler: Scheduler) -> None:
        self.pool = pool
        self.runner = runner
        self.scheduler = scheduler

    async def runs(
        self,
        page: Pagination,
        *,
        job: str | None = None,
        status: RunStatus | None = None,
        trigger: Trigger | None = None,
    ) -> Page[JobRun]:
        """One page of job runs, newest first, optionally of one job, status or trigger."""
        if job is not None and not _JOB_NAME.match(job):
            return page.page([], 0)  # no job has such a name
        filters = {"job": job, "status": status, "trigger": trigger}
        async with self.pool.connection() as conn:
            cur = await conn.execute(f"SELECT count(*) FROM job_runs {_RUN_FILTER}", filters)
            total_row = await cur.fetchone()
            cur = await conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM job_runs {_RUN_FILTER} "
                "ORDER BY id DESC LIMIT %(limit)s OFFSET %(offset)s",
                {**filters, "limit": page.limit, "offset": min(page.offset, _MAX_ID)},
            )
            rows = await cur.fetchall()
        total = int(total_row[0]) if total_row else 0
        return page.page([_run(row) for row in rows], total)

    async def run(self, job_id: int) -> JobRun:
        """Job run `job_id`; 404 if there is none."""
        if not 0 < job_id <= _MAX_ID:
            raise NotFoundException(detail=f"no job run {job_id}")
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM job_runs WHERE id = %s", (job_id,)
            )
            row = await cur.fetchone()
        if row is None:
            raise NotFoundException(detail=f"no job run {job_id}")
        return _run(row)

    async def schedules(self) -> list[JobSchedule]:
        """Every registered job with its effective schedule."""
        schedules = await self._effective()
        return [self._view(schedule) for schedule in schedules.values()]

    async def update_schedule(self, name: str, update: JobScheduleUpdate) -> JobSchedule:
        """Job `name`'s schedule after storing `update` in the schedules table."""
        definition = self._definition(name)
        trigger = None
        if update.trigger is not None:  # in a thread: an impossible date takes a while to prove
            trigger = await to_thread.run_sync(_checked_trigger, update.trigger)
        params = None if update.params is None else _checked_params(definition, update.params)
        current = (await self._effective())[name]
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO job_schedules (name, trigger, enabled, params, updated_at) "
                "VALUES (%(name)s, %(new_trigger)s, %(new_enabled)s, %(new_params)s, now()) "
                "ON CONFLICT (name) DO UPDATE SET "
                "trigger = coalesce(%(trigger)s::text, job_schedules.trigger), "
                "enabled = coalesce(%(enabled)s::boolean, job_schedules.enabled), "
                "params = coalesce(%(params)s::jsonb, job_schedules.params), updated_at = now()",
                {
                    "name": name,
                    "new_trigger": trigger or current.trigger or "off",
                    "new_enabled": True if update.enabled is None else update.enabled,
                    "new_params": Jsonb(params or {}),
                    "trigger": trigger,
                    "enabled": update.enabled,
                    "params": None if params is None else Jsonb(params),
                },
            )
        self.scheduler.request_reload()
        return self._view((await self._effective())[name])

    async def run_now(self, name: str, params: Mapping[str, Any] | None) -> int:
        """The id of a new run of job `name` with its schedule's params and `params` on top."""
        definition = self._definition(name)
        given = {} if params is None else _checked_params(definition, params)
        schedule = (await self._effective())[name]
        typed = _typed_params(definition, {**schedule.params, **given})
        job_id = await self.runner.submit(name, typed, trigger="api")
        assert job_id is not None  # without a slot key a run is always recorded
        return job_id

    def _definition(self, name: str) -> JobDefinition:
        definition = self.scheduler.jobs.get(name)
        if definition is None:
            known = ", ".join(sorted(self.scheduler.jobs))
            raise NotFoundException(detail=f"no job named {name[:100]!r}; jobs: {known}")
        return definition

    async def _effective(self) -> dict[str, Schedule]:
        async with self.pool.connection() as conn:
            rows = await read_schedule_rows(conn)
        return effective_schedules(self.scheduler.jobs, self.scheduler.overrides, rows)

    def _view(self, schedule: Schedule) -> JobSchedule:
        leading = self.scheduler.is_leader and schedule.enabled
        return JobSchedule(
            name=schedule.name,
            description=self.scheduler.jobs[schedule.name].description,
            trigger=schedule.trigger,
            enabled=schedule.enabled,
            params=dict(schedule.params),
            source=schedule.source,
            next_run_at=next_fire_time(schedule.trigger) if leading else None,
        )


def _run(row: tuple[Any, ...]) -> JobRun:
    (id_, job, trigger, status, progress, params, result, error, slot_key, *times) = row
    created_at, started_at, finished_at = times
    return JobRun(
        id=int(id_),
        job=job,
        trigger=trigger,
        status=status,
        progress=float(progress),
        params=params if isinstance(params, dict) else {},
        result=result if isinstance(result, dict) or result is None else {"value": result},
        error=error,
        slot_key=slot_key,
        created_at=created_at,
        started_at=started_at,
        finished_at=finished_at,
    )


def _invalid(key: str, message: str) -> ValidationException:
    return ValidationException(
        detail=message, extra=[{"key": key, "source": "body", "message": message}]
    )


def _checked_trigger(text: str) -> str:
    """The normalized trigger text; 400 if it is not one."""
    try:
        parse_trigger(text)
    except InvalidTriggerError as exc:
        raise _invalid("trigger", str(exc)) from None
    return normalize_trigger(text)


def _checked_params(definition: JobDefinition, params: Mapping[str, Any]) -> dict[str, Any]:
    """The job's own parameters among `params`, checked against its parameter type; else 400."""
    _check_json(params)
    _typed_params(definition, {**definition.default_params, **params})
    fields = set(definition.params.__struct_fields__)
    return {key: value for key, value in params.items() if key in fields}


def _typed_params(definition: JobDefinition, params: Mapping[str, Any]) -> msgspec.Struct:
    try:
        return msgspec.convert(dict(params), definition.params)
    except (msgspec.ValidationError, ValueError, TypeError) as exc:
        message = str(exc)
        match = _ERROR_PATH.search(message)
        key = f"params.{match[1]}" if match and match[1] else "params"
        raise _invalid(key, f"invalid params for job {definition.name}: {message}") from None


def _check_json(params: Mapping[str, Any]) -> None:
    """400 for what Postgres' jsonb refuses: NUL characters, or absurd nesting."""
    stack: list[tuple[object, int]] = [(params, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > _MAX_PARAM_DEPTH:
            raise _invalid("params", f"params nest deeper than {_MAX_PARAM_DEPTH} levels")
        if isinstance(value, str) and "\x00" in value:
            raise _invalid("params", "params may not contain NUL characters")
        if isinstance(value, Mapping):
            stack.extend((key, depth + 1) for key in value)
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list | tuple):
            stack.extend((item, depth + 1) for item in value)
