"""Scheduled jobs with exactly one leader across API replicas.

Every replica runs a :class:`Scheduler`. Each `leader_check_seconds` a follower tries to take
a Postgres advisory lock on a dedicated connection; the replica holding it leads and runs an
APScheduler with one entry per enabled schedule. An entry only submits its job to the
:class:`~api.lib.jobs.JobRunner` under a slot key (`name@fire time`), so a slot runs at most
once even if two replicas briefly both lead. The lock lives as long as the leader's
connection: when the leader dies Postgres drops it and a follower takes over at its next
check; when the leader loses its connection it stops scheduling at once.

Schedules: a job's registered default < `REGIMELAB_SCHEDULES` < the `job_schedules` table.
Triggers: a standard crontab in UTC ('0 22 * * 1-5'; 0 or 7 is Sunday), 'every <n><s|m|h|d>'
(aligned to a fixed epoch, so every replica computes the same slots) or 'off'.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import psycopg
from apscheduler.executors.base import BaseExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from psycopg_pool import AsyncConnectionPool

from api.lib.jobs import JobDefinition, JobRunner, load_jobs
from api.lib.observability import SCHEDULER_LEADER
from engine.errors import ConfigError
from engine.settings import Settings

__all__ = [
    "LEADER_LOCK_KEY",
    "MAX_TRIGGER_CHARS",
    "InvalidTriggerError",
    "Schedule",
    "ScheduleRow",
    "ScheduleSource",
    "Scheduler",
    "effective_schedules",
    "next_fire_time",
    "normalize_trigger",
    "parse_trigger",
    "read_schedule_rows",
    "settings_schedules",
]

log = logging.getLogger("regimelab.scheduler")

ScheduleSource = Literal["default", "settings", "table"]

# pg_try_advisory_lock key of the scheduler leader ("REGLAB" + 1); locks are per database
LEADER_LOCK_KEY: Final = 0x5245_474C_4142_0001
MAX_TRIGGER_CHARS: Final = 200
_INTERVAL_ANCHOR: Final = datetime(2000, 1, 1, tzinfo=UTC)
_MAX_INTERVAL_SECONDS: Final = 366 * 86_400
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
_EVERY: Final = re.compile(r"every\s*(\d{1,9})\s*([smhd])")
_WEEKDAYS: Final = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab numbering
_FORMS: Final = "use a 5-field crontab ('0 22 * * 1-5'), 'every <n><s|m|h|d>' or 'off'"
_MIN_CATCH_UP: Final = 60.0  # seconds: a slot missed during a failover still runs


class InvalidTriggerError(ValueError):
    """A trigger that is neither a crontab, 'every <n><unit>' nor 'off' (or never fires)."""


def normalize_trigger(text: str) -> str:
    """The trigger with whitespace collapsed and lower-cased, as it is stored."""
    return " ".join(text.split()).lower()


def parse_trigger(text: str) -> BaseTrigger | None:
    """The APScheduler trigger `text` describes (UTC); None for 'off'."""
    normalized = normalize_trigger(text)
    if not normalized or len(normalized) > MAX_TRIGGER_CHARS:
        raise InvalidTriggerError(f"{text[:MAX_TRIGGER_CHARS]!r} is not a trigger: {_FORMS}")
    if normalized == "off":
        return None
    if normalized.startswith("every"):
        return _interval(text, normalized)
    return _cron(text, normalized)


def _interval(text: str, normalized: str) -> IntervalTrigger:
    match = _EVERY.fullmatch(normalized)
    if match is None:
        raise InvalidTriggerError(f"{text!r} is not an interval: write 'every <n><s|m|h|d>'")
    seconds = int(match[1]) * _UNIT_SECONDS[match[2]]
    if not 0 < seconds <= _MAX_INTERVAL_SECONDS:
        raise InvalidTriggerError(f"{text!r}: an interval must be between 1 s and 366 days")
    return IntervalTrigger(seconds=seconds, start_date=_INTERVAL_ANCHOR, timezone=UTC)


def _cron(text: str, normalized: str) -> CronTrigger:
    fields = normalized.split(" ")
    if len(fields) != 5:
        raise InvalidTriggerError(f"{text!r} is not a trigger: {_FORMS}")
    minute, hour, day, month, weekdays = fields
    try:
        trigger = CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_weekdays(weekdays),
            timezone=UTC,
        )
    except (ValueError, TypeError, OverflowError, IndexError) as exc:
        raise InvalidTriggerError(f"{text!r} is not a valid crontab: {exc}") from None
    if trigger.get_next_fire_time(None, datetime.now(UTC)) is None:
        raise InvalidTriggerError(f"{text!r} never fires")
    return trigger


def _weekdays(field: str) -> str:
    """APScheduler's day_of_week for a crontab's (APScheduler 3 counts 0 as Monday)."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        span, slash, step_text = part.partition("/")
        step = _weekday_number(step_text, "step", upper=7) if slash else 1
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            first_text, _, last_text = span.partition("-")
            first, last = _weekday(first_text), _weekday(last_text)
            last = 7 if last == 0 and first > 0 else last  # 'fri-sun'
        else:
            first = _weekday(span)
            last = 6 if slash else first
        if first > last or step < 1:
            raise ValueError(f"day of week {part!r} is an empty range")
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(_WEEKDAYS[day] for day in sorted(days))


def _weekday(text: str) -> int:
    if text in _WEEKDAYS:
        return _WEEKDAYS.index(text)
    return _weekday_number(text, "day of week", upper=7)


def _weekday_number(text: str, what: str, *, upper: int) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > upper:
        raise ValueError(f"{what} {text!r} is not 0-{upper} (0 or 7 = Sunday) or sun-sat")
    return int(text)


def next_fire_time(trigger_text: str | None, now: datetime | None = None) -> datetime | None:
    """When a trigger fires next after `now` (None: off, on demand only, or invalid)."""
    if trigger_text is None:
        return None
    try:
        trigger = parse_trigger(trigger_text)
    except InvalidTriggerError:
        return None
    if trigger is None:
        return None
    fire: datetime | None = trigger.get_next_fire_time(None, now or datetime.now(UTC))
    return fire


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """A row of the `job_schedules` table (it overrides defaults and settings)."""

    name: str
    trigger: str
    enabled: bool
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Schedule:
    """A job's effective schedule: its trigger, whether it runs, with what, set where."""

    name: str
    trigger: str | None  # None: the job runs on demand only
    enabled: bool  # False also when the trigger is None or 'off'
    params: Mapping[str, Any]
    source: ScheduleSource


def effective_schedules(
    jobs: Mapping[str, JobDefinition],
    overrides: Mapping[str, str],
    rows: Iterable[ScheduleRow],
) -> dict[str, Schedule]:
    """Each job's schedule: registered default < settings override < table row."""
    table = {row.name: row for row in rows}
    schedules = {}
    for name, definition in sorted(jobs.items()):
        params = dict(definition.default_params)
        row = table.get(name)
        trigger: str | None
        source: ScheduleSource
        if row is not None:
            trigger, enabled, source = row.trigger, row.enabled, "table"
            params.update(row.params)
        elif name in overrides:
            trigger, enabled, source = overrides[name], True, "settings"
        else:
            trigger, enabled, source = definition.schedule, True, "default"
        off = trigger is None or normalize_trigger(trigger) == "off"
        schedules[name] = Schedule(name, trigger, enabled and not off, params, source)
    return schedules


def settings_schedules(settings: Settings, jobs: Mapping[str, JobDefinition]) -> dict[str, str]:
    """`REGIMELAB_SCHEDULES` by job; a ConfigError for an unknown job or a bad trigger."""
    overrides = settings.schedule_overrides
    for name, text in overrides.items():
        if name not in jobs:
            raise ConfigError(
                f"REGIMELAB_SCHEDULES names no job {name!r}; jobs: {', '.join(sorted(jobs))}"
            )
        try:
            parse_trigger(text)
        except InvalidTriggerError as exc:
            raise ConfigError(f"REGIMELAB_SCHEDULES entry for {name}: {exc}") from None
    return {name: normalize_trigger(text) for name, text in overrides.items()}


async def read_schedule_rows(conn: psycopg.AsyncConnection[Any]) -> list[ScheduleRow]:
    """Every row of `job_schedules`."""
    cur = await conn.execute("SELECT name, trigger, enabled, params FROM job_schedules")
    return [
        ScheduleRow(name, trigger, enabled, params if isinstance(params, dict) else {})
        for name, trigger, enabled, params in await cur.fetchall()
    ]


class _SlotExecutor(BaseExecutor):  # type: ignore[misc]  # APScheduler is untyped
    """Awaits each due job as `func(*args, fire_time=<its slot>)` on the event loop."""

    def start(self, scheduler: Any, alias: str) -> None:
        super().start(scheduler, alias)
        self._tasks: set[asyncio.Task[None]] = set()

    def shutdown(self, wait: bool = True) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        task = asyncio.get_running_loop().create_task(self._fire(job, run_times))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fire(self, job: Any, run_times: list[datetime]) -> None:
        try:
            for run_time in run_times:
                late = (datetime.now(UTC) - run_time).total_seconds()
                if job.misfire_grace_time is None or late <= job.misfire_grace_time:
                    await job.func(*job.args, fire_time=run_time, **job.kwargs)
                else:
                    log.warning("skipped %s's slot %s: %.0f s late", job.id, run_time, late)
        finally:
            self._run_job_success(job.id, [])


class Scheduler:
    """This replica's part in scheduling: compete for the lead, and schedule while leading.

    `jobs` (every registered job) and `overrides` (checked `REGIMELAB_SCHEDULES`) are what
    the job routes combine with the schedules table, as the leader does.
    """

    def __init__(
        self, settings: Settings, database_url: str, runner: JobRunner, pool: AsyncConnectionPool
    ) -> None:
        self.settings = settings
        self.database_url = database_url
        self.runner = runner
        self.pool = pool
        self.jobs = load_jobs()
        self.overrides = settings_schedules(settings, self.jobs)
        self.is_leader = False
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._aps: Any = None  # the AsyncIOScheduler while leading
        self._installed: dict[str, Schedule] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._problem: str | None = None

    @property
    def state(self) -> Literal["leader", "follower", "disabled"]:
        """This replica's role."""
        if not self.settings.scheduler:
            return "disabled"
        return "leader" if self.is_leader else "follower"

    @property
    def _interval(self) -> float:
        return self.settings.leader_check_seconds

    @property
    def _catch_up(self) -> float:
        """Seconds back a new leader looks for a slot the old one may have missed."""
        return max(2 * self._interval, _MIN_CATCH_UP)

    async def start(self) -> None:
        """Begin competing for leadership (a background task); nothing if disabled."""
        SCHEDULER_LEADER.set(0)
        if not self.settings.scheduler:
            log.info("scheduler disabled (REGIMELAB_SCHEDULER=false)")
            return
        self._task = asyncio.create_task(self._campaign(), name="scheduler-leader-election")

    async def stop(self) -> None:
        """Stop scheduling and release leadership."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._resign("the API is stopping")

    def request_reload(self) -> None:
        """Check the lock and reload schedules now rather than at the next interval."""
        self._wake.set()

    async def _campaign(self) -> None:
        while True:
            await self._check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()

    async def _check(self) -> None:
        limit = max(self._interval, self.settings.connect_timeout)
        try:
            async with asyncio.timeout(limit):
                if self.is_leader:
                    await self._refresh()
                else:
                    await self._compete()
        except TimeoutError:
            await self._resign(f"the database did not answer within {limit:g} s")
        except Exception as exc:  # a lost or unreachable database: follow, retry next round
            await self._resign(_first_line(exc))
        else:
            self._problem = None

    async def _compete(self) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = await self._connect()
        cur = await self._conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_KEY,))
        row = await cur.fetchone()
        if row is not None and row[0]:
            # read the schedules before leading: a database we cannot schedule from
            # (not migrated, say) is a reason to keep following, not to flap
            await self._lead(await read_schedule_rows(self._conn))

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(
            self.database_url,
            autocommit=True,
            connect_timeout=max(1, round(self.settings.connect_timeout)),
            application_name="regimelab-scheduler",
        )
        # Postgres drops a vanished leader's session (and lock) after about 3 intervals
        # even when no FIN/RST ever arrives (a dead host or a network partition).
        probe = str(max(1, round(self._interval)))
        for setting, value in (
            ("tcp_keepalives_idle", probe),
            ("tcp_keepalives_interval", probe),
            ("tcp_keepalives_count", "3"),
        ):
            await conn.execute("SELECT set_config(%s, %s, false)", (setting, value))
        return conn

    async def _lead(self, rows: list[ScheduleRow]) -> None:
        self.is_leader = True
        SCHEDULER_LEADER.set(1)
        self._aps = AsyncIOScheduler(
            timezone=UTC,
            executors={"default": _SlotExecutor()},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(self._catch_up),
            },
        )
        self._aps.start()
        log.warning("scheduler: this replica (pid %d) is now the leader", os.getpid())
        self._install(effective_schedules(self.jobs, self.overrides, rows))

    async def _refresh(self) -> None:
        """Prove the lock's connection alive by reading the schedules; install changes."""
        assert self._conn is not None
        rows = await read_schedule_rows(self._conn)
        self._install(effective_schedules(self.jobs, self.overrides, rows))

    def _install(self, schedules: Mapping[str, Schedule]) -> None:
        wanted = {name: schedule for name, schedule in schedules.items() if schedule.enabled}
        for name, installed in list(self._installed.items()):
            if wanted.get(name) != installed:
                if self._aps.get_job(name) is not None:
                    self._aps.remove_job(name)
                del self._installed[name]
                log.info("scheduler: unscheduled %s (%s)", name, installed.trigger)
        for name, schedule in wanted.items():
            if name not in self._installed:
                self._add(schedule)
                self._installed[name] = schedule  # also when invalid: log it once

    def _add(self, schedule: Schedule) -> None:
        assert schedule.trigger is not None
        try:
            trigger = parse_trigger(schedule.trigger)
        except InvalidTriggerError as exc:
            log.error("scheduler: %s is not scheduled: %s", schedule.name, exc)
            return
        if trigger is None:  # 'off' (an enabled schedule is never off)
            return
        since = datetime.now(UTC) - timedelta(seconds=self._catch_up)
        self._aps.add_job(
            self._fire,
            trigger,
            args=(schedule.name, dict(schedule.params)),
            id=schedule.name,
            name=schedule.name,
            next_run_time=trigger.get_next_fire_time(None, since),
            replace_existing=True,
        )
        log.info(
            "scheduler: %s runs %s (from %s)", schedule.name, schedule.trigger, schedule.source
        )

    async def _fire(
        self, name: str, params: dict[str, Any], *, fire_time: datetime | None = None
    ) -> None:
        """Submit job `name` for its slot at `fire_time`, unless that slot already ran."""
        slot = (fire_time or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
        slot_key = f"{name}@{slot}"
        try:
            job_id = await self.runner.submit(name, params, trigger="schedule", slot_key=slot_key)
        except Exception:
            log.exception("scheduler: could not start %s", slot_key)
            return
        if job_id is None:
            log.info("scheduler: %s already ran", slot_key)
        else:
            log.info("scheduler: started %s as run %d", slot_key, job_id)

    async def _resign(self, reason: str) -> None:
        """Stop scheduling at once, release the lock, and follow."""
        if self._aps is not None:
            if self._aps.running:
                self._aps.shutdown(wait=False)
            self._aps = None
            self._installed = {}
        was_leader, self.is_leader = self.is_leader, False
        SCHEDULER_LEADER.set(0)
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            if was_leader:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1):
                        await conn.execute("SELECT pg_advisory_unlock(%s)", (LEADER_LOCK_KEY,))
            with contextlib.suppress(Exception):
                await conn.close()
        if was_leader:
            log.warning("scheduler: this replica stopped leading: %s", reason)
        elif reason != self._problem and self._task is not None:
            log.warning("scheduler: cannot compete for the lead: %s", reason)
        self._problem = reason


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
