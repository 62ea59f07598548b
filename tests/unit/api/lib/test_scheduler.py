"""Schedule triggers and which source wins: the scheduler's pure parts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from api.lib.jobs import JobDefinition
from api.lib.scheduler import (
    InvalidTriggerError,
    ScheduleRow,
    effective_schedules,
    next_fire_time,
    normalize_trigger,
    parse_trigger,
    settings_schedules,
)
from engine.errors import ConfigError
from engine.settings import Settings

THURSDAY = datetime(2026, 11, 26, 23, 0, 30, tzinfo=UTC)


class _Params(msgspec.Struct, kw_only=True):
    days: int = 1


def _definition(name: str, schedule: str | None) -> JobDefinition:
    return JobDefinition(name, lambda _ctx, _params: {}, _Params, f"{name} job", schedule)


JOBS = {
    "ingest.watchlist": _definition("ingest.watchlist", "0 22 * * 1-5"),
    "housekeeping": _definition("housekeeping", "every 6h"),
    "backtest": _definition("backtest", None),
}


def _next(trigger: str, now: datetime = THURSDAY) -> datetime | None:
    return next_fire_time(trigger, now)


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        ("0 22 * * 1-5", datetime(2026, 11, 27, 22, 0, tzinfo=UTC)),  # Friday
        ("0 22 * * 0", datetime(2026, 11, 29, 22, 0, tzinfo=UTC)),  # 0 is Sunday, as in cron
        ("0 22 * * 7", datetime(2026, 11, 29, 22, 0, tzinfo=UTC)),  # so is 7
        ("0 22 * * 6", datetime(2026, 11, 28, 22, 0, tzinfo=UTC)),  # 6 is Saturday
        ("0 22 * * mon-fri", datetime(2026, 11, 27, 22, 0, tzinfo=UTC)),
        ("0 22 * * fri-sun", datetime(2026, 11, 27, 22, 0, tzinfo=UTC)),
        ("0 22 * * 1,3", datetime(2026, 11, 30, 22, 0, tzinfo=UTC)),  # Monday
        ("0 22 * * */3", datetime(2026, 11, 28, 22, 0, tzinfo=UTC)),  # Sun, Wed, Sat
        ("30 9 1 * *", datetime(2026, 12, 1, 9, 30, tzinfo=UTC)),
        ("*/15 * * * *", datetime(2026, 11, 26, 23, 15, tzinfo=UTC)),
        ("  0   22 * *   1-5 ", datetime(2026, 11, 27, 22, 0, tzinfo=UTC)),
    ],
)
def test_crontabs_fire_in_utc_with_crontab_weekdays(trigger: str, expected: datetime) -> None:
    assert _next(trigger) == expected


@pytest.mark.parametrize(
    ("trigger", "step"),
    [
        ("every 15m", timedelta(minutes=15)),
        ("every 1h", timedelta(hours=1)),
        ("every 1d", timedelta(days=1)),
        ("every 30s", timedelta(seconds=30)),
        ("Every 6 H", timedelta(hours=6)),
    ],
)
def test_intervals_are_aligned_so_every_replica_agrees(trigger: str, step: timedelta) -> None:
    now = datetime(2026, 11, 26, 23, 7, 41, 123456, tzinfo=UTC)
    first = _next(trigger, now)

    assert first is not None
    assert now < first <= now + step
    # the same slots from another replica, or a second later
    assert _next(trigger, now + timedelta(seconds=0.5)) == first
    assert (first - datetime(2000, 1, 1, tzinfo=UTC)) % step == timedelta(0)


def test_off_means_no_trigger() -> None:
    assert parse_trigger("off") is None
    assert parse_trigger(" OFF ") is None
    assert next_fire_time("off") is None
    assert next_fire_time(None) is None


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        ("every banana", "is not an interval"),
        ("every 0s", "between 1 s and 366 days"),
        ("every 400d", "between 1 s and 366 days"),
        ("every 5w", "is not an interval"),
        ("0 22 * *", "5-field crontab"),
        ("0 0 1 1 * *", "5-field crontab"),
        ("60 * * * *", "is not a valid crontab"),
        ("0 22 * * 8", "is not a valid crontab"),
        ("0 22 * * 5-1", "is not a valid crontab"),
        ("0 22 * * 1/0", "is not a valid crontab"),
        ("0 0 31 2 *", "never fires"),
        ("", "is not a trigger"),
        ("x" * 201, "is not a trigger"),
        ("\x00 * * * *", "is not a valid crontab"),
    ],
)
def test_invalid_triggers_say_why(trigger: str, message: str) -> None:
    with pytest.raises(InvalidTriggerError, match=message):
        parse_trigger(trigger)


def test_triggers_are_stored_normalized() -> None:
    assert normalize_trigger("  Every   15m ") == "every 15m"


def test_table_beats_settings_beats_default() -> None:
    rows = [ScheduleRow("housekeeping", "every 1h", True, {"days": 3})]
    overrides = {"housekeeping": "every 2h", "ingest.watchlist": "every 1d"}

    schedules = effective_schedules(JOBS, overrides, rows)

    assert schedules["housekeeping"].trigger == "every 1h"
    assert schedules["housekeeping"].source == "table"
    assert schedules["housekeeping"].params == {"days": 3}
    assert schedules["ingest.watchlist"].trigger == "every 1d"
    assert schedules["ingest.watchlist"].source == "settings"
    assert schedules["backtest"].source == "default"
    assert list(schedules) == sorted(JOBS)


def test_on_demand_off_and_disabled_jobs_are_not_enabled() -> None:
    rows = [ScheduleRow("housekeeping", "every 1h", False, {})]

    schedules = effective_schedules(JOBS, {"ingest.watchlist": "off"}, rows)

    assert not schedules["backtest"].enabled  # no default schedule: on demand only
    assert schedules["backtest"].trigger is None
    assert not schedules["ingest.watchlist"].enabled
    assert not schedules["housekeeping"].enabled


def test_default_params_sit_under_table_params_and_rows_of_unknown_jobs_are_ignored() -> None:
    jobs = {
        "housekeeping": JobDefinition(
            "housekeeping", lambda _c, _p: {}, _Params, "", "every 6h", {"days": 9}
        )
    }
    rows = [ScheduleRow("retired-job", "every 1h", True, {})]

    assert effective_schedules(jobs, {}, rows)["housekeeping"].params == {"days": 9}
    assert "retired-job" not in effective_schedules(jobs, {}, rows)


def test_settings_overrides_are_checked() -> None:
    good = Settings(schedules=("housekeeping=Every  1s", "backtest=off"))
    assert settings_schedules(good, JOBS) == {"housekeeping": "every 1s", "backtest": "off"}

    with pytest.raises(ConfigError, match=r"REGIMELAB_SCHEDULES entry for housekeeping: .*banana"):
        settings_schedules(Settings(schedules=("housekeeping=every banana",)), JOBS)
    with pytest.raises(ConfigError, match="REGIMELAB_SCHEDULES names no job 'nope'"):
        settings_schedules(Settings(schedules=("nope=every 1h",)), JOBS)
