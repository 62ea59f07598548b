"""Request and response types of the job routes: runs, schedules, schedule updates."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec

from api.lib.scheduler import MAX_TRIGGER_CHARS, ScheduleSource

__all__ = [
    "JOB_NAME_PATTERN",
    "JobRun",
    "JobSchedule",
    "JobScheduleUpdate",
    "RunStatus",
]

RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JOB_NAME_PATTERN: Final = r"^[A-Za-z0-9_.-]{1,100}$"


class JobRun(msgspec.Struct, kw_only=True):
    """One run of a job: how far it got, what it was asked and what it produced."""

    id: int
    job: str
    trigger: str
    """How it started: api, schedule, cli or startup."""
    status: RunStatus
    progress: float
    """Fraction done, 0..1."""
    params: dict[str, Any]
    result: dict[str, Any] | None
    """The job's summary once it succeeded."""
    error: str | None
    """Why it failed."""
    slot_key: str | None
    """For scheduled runs, `job@fire time`: each slot runs at most once."""
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobSchedule(msgspec.Struct, kw_only=True):
    """A registered job and when it runs: default < settings < the schedules table."""

    name: str
    description: str
    trigger: str | None
    """Crontab (UTC), 'every <n><s|m|h|d>', 'off', or null: on demand only."""
    enabled: bool
    params: dict[str, Any]
    source: ScheduleSource
    """Where the trigger comes from: the job's default, REGIMELAB_SCHEDULES, or the table."""
    next_run_at: datetime | None
    """When it runs next, if this replica leads the scheduler (else null)."""


class JobScheduleUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A change to a job's schedule; fields left out keep their current values."""

    trigger: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TRIGGER_CHARS)] | None = None
    """Crontab in UTC ('0 22 * * 1-5', 0 or 7 = Sunday), 'every <n><s|m|h|d>' or 'off'."""
    enabled: bool | None = None
    params: dict[str, Any] | None = None
    """Parameters of scheduled runs (checked against the job's parameters)."""
