"""Long work as jobs: a `job_runs` row, a process pool, progress and result in the row.

A job is a plain function `(ctx, params) -> summary` registered with `@job`; the API
(202 + job id), the scheduler and tests all go through :class:`JobRunner`, which records
the run, executes it in a worker process (CPU-bound fits and sweeps never block the event
loop) and stores its outcome. Workers report progress into the row; the replica that
submitted the job records success or failure, also when a worker process dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import multiprocessing
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import msgspec
import psycopg
from litestar import Response
from litestar.exceptions import ValidationException
from litestar.status_codes import HTTP_202_ACCEPTED
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from api.lib.observability import JOB_DURATION, PROVIDER_CALLS
from engine.errors import RegimeLabError
from engine.io import job_leases as leases
from engine.io.backtests import json_safe
from engine.io.cache import bump_versions, client
from engine.io.db import connect
from engine.settings import Settings

__all__ = [
    "JOBS",
    "JobAccepted",
    "JobContext",
    "JobDefinition",
    "JobEnv",
    "JobRunner",
    "Trigger",
    "accepted",
    "job",
    "load_jobs",
]

log = logging.getLogger(__name__)

Trigger = Literal["api", "schedule", "cli", "startup"]
# Domain modules that register jobs; workers import them to find a job by name.
JOB_MODULES: Final = (
    "api.domain.ingest.jobs",
    "api.domain.regimes.jobs",
    "api.domain.backtests.jobs",
    "api.domain.alerts.jobs",
    "api.domain.analogs.jobs",
    "api.domain.system.jobs",
)
_PROGRESS_EVERY: Final = 0.5  # seconds between progress writes


@dataclass(frozen=True, slots=True)
class JobEnv:
    """Where a job's worker connects (picklable: it crosses into the worker process)."""

    settings: Settings
    database_url: str
    redis_url: str | None


class JobAccepted(msgspec.Struct, kw_only=True):
    """A job was queued: poll `status_url` for its progress and result."""

    job_id: int
    job: str
    status: Literal["queued"] = "queued"
    status_url: str


def accepted(job_id: int, name: str) -> Response[JobAccepted]:
    """202 Accepted with the job's id and a Location header to poll."""
    url = f"/api/v1/jobs/{job_id}"
    return Response(
        JobAccepted(job_id=job_id, job=name, status_url=url),
        status_code=HTTP_202_ACCEPTED,
        headers={"Location": url},
    )


class JobContext:
    """What a running job may do besides its work: report progress, invalidate caches."""

    def __init__(self, job_id: int, env: JobEnv) -> None:
        self.job_id = job_id
        self.env = env
        self._last_progress = 0.0

    @property
    def settings(self) -> Settings:
        """The replica's settings."""
        return self.env.settings

    @property
    def database_url(self) -> str:
        """The database the job reads and writes."""
        return self.env.database_url

    @property
    def redis_url(self) -> str | None:
        """The Redis of the provider and response caches."""
        return self.env.redis_url

    def progress(self, fraction: float, *, force: bool = False) -> None:
        """Record progress (0..1) in the job's row, at most twice a second."""
        now = time.monotonic()
        if not force and now - self._last_progress < _PROGRESS_EVERY:
            return
        self._last_progress = now
        with connect(self.database_url, timeout=self.settings.connect_timeout) as conn:
            conn.execute(
                "UPDATE job_runs SET progress = %s WHERE id = %s",
                (min(max(float(fraction), 0.0), 1.0), self.job_id),
            )
            conn.commit()

    def steps(self, done: int, total: int, _what: str = "") -> None:
        """The engine's `progress(done, total, what)` callback shape, for this job."""
        self.progress(done / total if total else 0.0)

    def invalidate(self, *scopes: str) -> None:
        """Mark data scopes changed so cached API reads of them recompute."""
        if self.redis_url is None:
            return
        redis_client = client(self.redis_url, timeout=self.settings.connect_timeout)
        try:
            bump_versions(redis_client, self.settings.cache_prefix, scopes)
        finally:
            redis_client.close()


JobFunction = Callable[[JobContext, Any], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class JobDefinition:
    """A registered job: its function, parameter type, description and default schedule."""

    name: str
    function: JobFunction
    params: type[msgspec.Struct]
    description: str
    schedule: str | None = None  # default trigger ('every 1d', crontab); None: on demand
    default_params: Mapping[str, Any] = field(default_factory=dict)


JOBS: dict[str, JobDefinition] = {}


def job(
    name: str,
    *,
    params: type[msgspec.Struct],
    schedule: str | None = None,
) -> Callable[[JobFunction], JobFunction]:
    """Register `function` as job `name` (its docstring's first line describes it)."""

    def register(function: JobFunction) -> JobFunction:
        doc = (function.__doc__ or name).strip().splitlines()[0]
        JOBS[name] = JobDefinition(name, function, params, doc, schedule)
        return function

    return register


def load_jobs() -> dict[str, JobDefinition]:
    """Every registered job (importing the domain modules that declare them)."""
    for module in JOB_MODULES:
        importlib.import_module(module)
    return JOBS


def public_error(exc: BaseException) -> str:
    """What a job failure may tell an API user: our own errors, never internals."""
    if isinstance(exc, RegimeLabError | ValueError | LookupError):
        lines = str(exc).strip().splitlines()
        return lines[0][:1000] if lines else type(exc).__name__
    return f"internal error ({type(exc).__name__}); see the server log"


def _execute(name: str, job_id: int, env: JobEnv, params: bytes) -> tuple[dict[str, Any], float]:
    """Worker-side: run job `name` and return its JSON-safe summary and duration."""
    definition = load_jobs()[name]
    decoded = msgspec.json.decode(params, type=definition.params)
    started = time.perf_counter()
    with connect(env.database_url, timeout=env.settings.connect_timeout) as conn:
        conn.execute(
            "UPDATE job_runs SET status = 'running', started_at = now() WHERE id = %s", (job_id,)
        )
        conn.commit()
    try:
        summary = definition.function(JobContext(job_id, env), decoded)
    except Exception:
        log.exception("job %s (run %d) failed", name, job_id)
        raise
    return dict(json_safe(dict(summary))), time.perf_counter() - started


def _pool(workers: int) -> ProcessPoolExecutor:
    # spawn: the API process holds threads, sockets and an event loop a fork would copy
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


class JobRunner:
    """Submits jobs to a process pool and records them in `job_runs`."""

    def __init__(self, pool: AsyncConnectionPool, env: JobEnv, workers: int) -> None:
        self._db = pool
        self.env = env
        self._workers = workers
        self._executor: ProcessPoolExecutor | None = None
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._lease: psycopg.AsyncConnection[Any] | None = None  # holds this replica's leases
        self._lease_lock = asyncio.Lock()

    async def _lease_connection(self) -> psycopg.AsyncConnection[Any]:
        """The replica's lease connection, reopened (leases re-taken) if it broke."""
        conn = self._lease
        if conn is None or conn.closed or conn.broken:
            conn = await psycopg.AsyncConnection.connect(
                self.env.database_url,
                autocommit=True,
                connect_timeout=max(1, round(self.env.settings.connect_timeout)),
            )
            for job_id in self.running:
                await leases.acquire(conn, job_id)
            self._lease = conn
        return conn

    async def reap_orphans(self) -> list[int]:
        """Fail runs left queued or running by replicas that died (see engine.io.job_leases)."""

        def reap() -> list[int]:
            with connect(
                self.env.database_url, timeout=self.env.settings.connect_timeout, autocommit=True
            ) as conn:
                return leases.reap_orphans(conn)

        reaped = await asyncio.to_thread(reap)
        if reaped:
            log.warning("marked %d orphaned job run(s) failed: %s", len(reaped), reaped)
        return reaped

    @property
    def running(self) -> list[int]:
        """Ids of jobs this replica is executing."""
        return sorted(self._tasks)

    async def submit(
        self,
        name: str,
        params: msgspec.Struct | Mapping[str, Any] | None = None,
        *,
        trigger: Trigger = "api",
        slot_key: str | None = None,
    ) -> int | None:
        """Record and start job `name`; its run id, or None if `slot_key` already ran."""
        definition = load_jobs().get(name)
        if definition is None:
            raise LookupError(f"no job named {name!r}; jobs: {', '.join(sorted(JOBS))}")
        typed = (
            params
            if isinstance(params, msgspec.Struct)
            else msgspec.convert({**definition.default_params, **(params or {})}, definition.params)
        )
        encoded = msgspec.json.encode(typed)
        if b"\\u0000" in encoded:  # Postgres JSON cannot store NUL characters
            raise ValidationException(detail="job parameters must not contain NUL characters")
        async with self._lease_lock:
            conn = await self._lease_connection()
            leased = await leases.insert_leased(
                conn, name, slot_key, trigger, msgspec.json.decode(encoded)
            )
        if leased is None:
            return None
        job_id = leased
        task = asyncio.create_task(self._run(name, job_id, encoded), name=f"job-{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(job_id, None))
        return job_id

    async def _run(self, name: str, job_id: int, params: bytes) -> None:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        if self._executor is None:
            self._executor = _pool(self._workers)
        try:
            summary, _ = await loop.run_in_executor(
                self._executor, _execute, name, job_id, self.env, params
            )
        except BrokenProcessPool:
            self._executor = None  # the next job gets a fresh pool
            await self._finish(job_id, name, started, error="the worker process died")
        except asyncio.CancelledError:
            await self._finish(job_id, name, started, error="interrupted: the API stopped")
            raise
        except Exception as exc:
            await self._finish(job_id, name, started, error=public_error(exc))
        else:
            _count_provider_calls(summary)
            await self._finish(job_id, name, started, result=summary)

    async def _finish(
        self,
        job_id: int,
        name: str,
        started: float,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        status = "failed" if error is not None else "succeeded"
        JOB_DURATION.labels(job=name, status=status).observe(time.perf_counter() - started)
        async with self._db.connection() as conn:
            await conn.execute(
                "UPDATE job_runs SET status = %s, result = %s, error = %s, finished_at = now(), "
                "progress = CASE WHEN %s = 'succeeded' THEN 1 ELSE progress END, "
                "started_at = coalesce(started_at, now()) WHERE id = %s",
                (status, Jsonb(result) if result is not None else None, error, status, job_id),
            )
        async with self._lease_lock:
            lease = self._lease
            if lease is not None and not (lease.closed or lease.broken):
                with contextlib.suppress(psycopg.Error):  # a lost lease dies with its session
                    await leases.release(lease, job_id)

    async def wait(self, job_id: int) -> None:
        """Until job `job_id` (submitted here) has finished; for tests and the CLI."""
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.shield(task)

    async def close(self) -> None:
        """Stop: in-flight jobs are recorded as interrupted, worker processes end."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._executor is not None:
            processes = list(getattr(self._executor, "_processes", {}).values())
            self._executor.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                if process.is_alive():
                    process.terminate()
            self._executor = None
        if self._lease is not None:
            await self._lease.close()
            self._lease = None


def _count_provider_calls(summary: Mapping[str, Any]) -> None:
    calls = summary.get("provider_calls")
    if not isinstance(calls, Mapping):
        return
    for provider, outcomes in calls.items():
        if isinstance(outcomes, Mapping):
            for outcome, count in outcomes.items():
                if isinstance(count, int) and count > 0:
                    PROVIDER_CALLS.labels(provider=str(provider), outcome=str(outcome)).inc(count)
