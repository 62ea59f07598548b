"""Data-quality views of stored bars and ingest runs: coverage against the exchange
calendar per symbol, quality flags per symbol, and the provider cache's hit rates.

Pure computation over frames (the reads live in `engine.io.quality`). Gaps are sessions of
the symbol's exchange calendar between its first and last daily bar that have no bar,
the same definition the ingest's quality report counts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final

import polars as pl

from engine.ingest.quality import _sessions
from engine.schema import ADJ_CLOSE, CLOSE, HIGH, LOW, SYMBOL, TS, VOLUME

__all__ = [
    "CACHE_OUTCOMES",
    "cache_hit_rates",
    "calendar_coverage",
    "ingest_run_frame",
    "missing_sessions",
    "quality_flags",
]

CACHE_OUTCOMES: Final = ("hit", "miss", "refresh", "bypass")
_DAY = "day"


def _days(bars: pl.DataFrame) -> pl.DataFrame:
    return bars.select(SYMBOL, pl.col(TS).dt.date().alias(_DAY)).unique()


def _calendar_days(
    bars: pl.DataFrame, calendars: Mapping[str, str | None]
) -> Iterator[tuple[str, pl.DataFrame, pl.DataFrame]]:
    """Per symbol with a known calendar: its bar days and the calendar's sessions from its
    first to its last bar (frames with one column, `day`)."""
    days = _days(bars)
    for symbol, calendar in calendars.items():
        own = days.filter(pl.col(SYMBOL) == symbol).select(_DAY)
        if not calendar or own.is_empty():
            continue
        first, last = own[_DAY].min(), own[_DAY].max()
        assert isinstance(first, date) and isinstance(last, date)
        sessions = _sessions(calendar, first, last)
        if sessions is None:  # a calendar exchange_calendars does not know
            continue
        yield symbol, own, sessions.filter(sessions >= first).to_frame(_DAY)


def missing_sessions(bars: pl.DataFrame, calendars: Mapping[str, str | None]) -> pl.DataFrame:
    """Per symbol, each session of its calendar (`calendars`: symbol -> exchange calendar
    name, e.g. XNYS) between its first and last daily bar without a bar: symbol, day.
    Symbols without a known calendar have none."""
    frames = [
        sessions.join(own, on=_DAY, how="anti").select(pl.lit(symbol).alias(SYMBOL), _DAY)
        for symbol, own, sessions in _calendar_days(bars, calendars)
    ]
    if not frames:
        return pl.DataFrame(schema={SYMBOL: pl.String(), _DAY: pl.Date()})
    return pl.concat(frames).sort(SYMBOL, _DAY)


def calendar_coverage(bars: pl.DataFrame, calendars: Mapping[str, str | None]) -> pl.DataFrame:
    """Per symbol of `bars` (daily): calendar, first and last day, bars, expected sessions,
    missing sessions, bars on non-session days and coverage (bars on sessions / sessions;
    null without a known calendar)."""
    spans = (
        _days(bars)
        .group_by(SYMBOL)
        .agg(
            pl.col(_DAY).min().alias("first"),
            pl.col(_DAY).max().alias("last"),
            pl.len().alias("bars"),
        )
    )
    counts = pl.DataFrame(
        [
            {
                SYMBOL: symbol,
                "sessions": sessions.height,
                "missing": sessions.join(own, on=_DAY, how="anti").height,
                "off_session": own.join(sessions, on=_DAY, how="anti").height,
            }
            for symbol, own, sessions in _calendar_days(bars, calendars)
        ],
        schema={
            SYMBOL: pl.String(),
            "sessions": pl.Int64(),
            "missing": pl.Int64(),
            "off_session": pl.Int64(),
        },
    )
    named = pl.DataFrame(
        {SYMBOL: list(calendars), "calendar": list(calendars.values())},
        schema={SYMBOL: pl.String(), "calendar": pl.String()},
    )
    return (
        spans.join(named, on=SYMBOL, how="left")
        .join(counts, on=SYMBOL, how="left")
        .with_columns(
            ((pl.col("bars") - pl.col("off_session")) / pl.col("sessions")).alias("coverage")
        )
        .select(
            SYMBOL,
            "calendar",
            "first",
            "last",
            pl.col("bars").cast(pl.Int64),
            "sessions",
            "missing",
            "off_session",
            "coverage",
        )
        .sort(SYMBOL)
    )


def quality_flags(
    bars: pl.DataFrame, *, jump_sigma: float = 8.0, stale_days: int = 10, today: date | None = None
) -> pl.DataFrame:
    """Per symbol, counts of bars worth a look (stored bars passed the ingest checks; these
    are plausible but suspicious): `zero_volume`, `flat_bar` (high == low), `unchanged_close`
    (same close as the bar before), `return_jump` (a log return beyond `jump_sigma` robust
    standard deviations, 1.4826 x MAD) and `missing_adj_close`; plus `days_stale` since the
    last bar (relative to `today`, default the newest bar of all symbols) and `stale`
    (more than `stale_days`)."""
    if today is None:
        newest = bars[TS].max()
        today = newest.date() if isinstance(newest, datetime) else date.today()
    log_return = pl.col("log_return")
    robust_sigma = (log_return - log_return.median()).abs().median() * 1.4826
    adj = pl.col(ADJ_CLOSE).is_null().sum() if ADJ_CLOSE in bars.columns else pl.lit(0)
    flags = (
        bars.sort(SYMBOL, TS)
        .with_columns(pl.col(CLOSE).log().diff().over(SYMBOL).alias("log_return"))
        .group_by(SYMBOL)
        .agg(
            pl.len().alias("bars"),
            (pl.col(VOLUME) == 0).sum().alias("zero_volume"),
            (pl.col(HIGH) == pl.col(LOW)).sum().alias("flat_bar"),
            (pl.col(CLOSE) == pl.col(CLOSE).shift(1)).sum().alias("unchanged_close"),
            ((log_return - log_return.median()).abs() > jump_sigma * robust_sigma)
            .sum()
            .alias("return_jump"),
            adj.alias("missing_adj_close"),
            pl.col(TS).max().dt.date().alias("last_day"),
        )
    )
    return (
        flags.with_columns((pl.lit(today) - pl.col("last_day")).dt.total_days().alias("days_stale"))
        .with_columns((pl.col("days_stale") > stale_days).alias("stale"))
        .drop("last_day")
        .sort(SYMBOL)
    )


def cache_hit_rates(runs: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """Provider cache outcomes summed per provider over ingest runs (`ingest_runs` rows
    with `provider` and `quality.cache`: outcome -> provider calls): runs, hit, miss,
    refresh, bypass, calls and hit_rate (hits / calls)."""
    rows = []
    for run in runs:
        quality = run.get("quality") or {}
        cache = (quality.get("cache") or {}) if isinstance(quality, Mapping) else {}
        rows.append(
            {
                "provider": str(run.get("provider")),
                **{outcome: int(cache.get(outcome, 0)) for outcome in CACHE_OUTCOMES},
            }
        )
    schema = {"provider": pl.String(), **{o: pl.Int64() for o in CACHE_OUTCOMES}}
    frame = pl.DataFrame(rows, schema=schema)
    calls = pl.sum_horizontal(*CACHE_OUTCOMES)
    return (
        frame.group_by("provider")
        .agg(pl.len().alias("runs"), *(pl.col(o).sum() for o in CACHE_OUTCOMES))
        .with_columns(calls.alias("calls"))
        .with_columns(
            pl.when(pl.col("calls") > 0).then(pl.col("hit") / pl.col("calls")).alias("hit_rate")
        )
        .sort("provider")
    )


def ingest_run_frame(runs: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """`ingest_runs` rows as a table: id, provider, interval, symbols (count), status, rows
    fetched / upserted / rejected, calendar gaps, rejected reasons ("reason=n, ..."), cache
    outcomes ("hit=n, ..."), started_at, seconds (run time) and error."""
    rows = []
    for run in runs:
        quality = run.get("quality") or {}
        rejected = quality.get("rejected") or {}
        cache = quality.get("cache") or {}
        started, finished = run.get("started_at"), run.get("finished_at")
        rows.append(
            {
                "id": run.get("id"),
                "provider": run.get("provider"),
                "interval": run.get("interval"),
                "symbols": len(run.get("symbols") or []),
                "status": run.get("status"),
                "rows_fetched": run.get("rows_fetched"),
                "rows_upserted": run.get("rows_upserted"),
                "rows_rejected": run.get("rows_rejected"),
                "calendar_gaps": quality.get("calendar_gaps"),
                "rejected": ", ".join(f"{k}={v}" for k, v in sorted(rejected.items())),
                "cache": ", ".join(f"{k}={v}" for k, v in sorted(cache.items())),
                "started_at": started,
                "seconds": ((finished - started).total_seconds() if started and finished else None),
                "error": run.get("error"),
            }
        )
    schema = {
        "id": pl.Int64(),
        "provider": pl.String(),
        "interval": pl.String(),
        "symbols": pl.Int64(),
        "status": pl.String(),
        "rows_fetched": pl.Int64(),
        "rows_upserted": pl.Int64(),
        "rows_rejected": pl.Int64(),
        "calendar_gaps": pl.Int64(),
        "rejected": pl.String(),
        "cache": pl.String(),
        "started_at": pl.Datetime("us", "UTC"),
        "seconds": pl.Float64(),
        "error": pl.String(),
    }
    return pl.DataFrame(rows, schema=schema)
