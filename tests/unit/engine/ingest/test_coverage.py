"""Coverage against the exchange calendar, quality flags and cache hit rates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from engine.ingest.coverage import (
    cache_hit_rates,
    calendar_coverage,
    ingest_run_frame,
    missing_sessions,
    quality_flags,
)


def _bars(symbol: str, days: list[date], closes: list[float] | None = None) -> pl.DataFrame:
    closes = closes or [100.0 + i for i in range(len(days))]
    return pl.DataFrame(
        {
            "symbol": [symbol] * len(days),
            "ts": [datetime(d.year, d.month, d.day, tzinfo=UTC) for d in days],
            "open": closes,
            "high": [c + 1 for c in closes],
            "low": [c - 1 for c in closes],
            "close": closes,
            "volume": [1000.0] * len(days),
        }
    )


# NYSE sessions of the first two weeks of July 2024: July 4 is a holiday.
JULY = [date(2024, 7, d) for d in (1, 2, 3, 5, 8, 9, 10, 11, 12)]


def test_missing_sessions_are_sessions_without_a_bar() -> None:
    bars = pl.concat(
        [
            _bars("FULL", JULY),
            _bars("GAPPY", [d for d in JULY if d not in (date(2024, 7, 3), date(2024, 7, 9))]),
            _bars("NOCAL", [date(2024, 7, 1), date(2024, 7, 12)]),
        ]
    )
    calendars = {"FULL": "XNYS", "GAPPY": "XNYS", "NOCAL": None}
    gaps = missing_sessions(bars, calendars)
    assert gaps.rows() == [("GAPPY", date(2024, 7, 3)), ("GAPPY", date(2024, 7, 9))]
    coverage = calendar_coverage(bars, calendars)
    rows = {row["symbol"]: row for row in coverage.iter_rows(named=True)}
    assert rows["FULL"]["missing"] == 0
    assert rows["FULL"]["coverage"] == 1.0
    assert rows["GAPPY"]["missing"] == 2
    assert rows["GAPPY"]["sessions"] == len(JULY)
    assert rows["GAPPY"]["coverage"] == pytest.approx(7 / 9)
    assert rows["NOCAL"]["calendar"] is None
    assert rows["NOCAL"]["coverage"] is None


def test_a_bar_on_a_holiday_counts_as_off_session() -> None:
    bars = _bars("X", [*JULY[:3], date(2024, 7, 4), *JULY[3:]])
    row = calendar_coverage(bars, {"X": "XNYS"}).row(0, named=True)
    assert row["off_session"] == 1
    assert row["missing"] == 0
    assert row["coverage"] == 1.0


def test_quality_flags_count_suspicious_bars() -> None:
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(60)]
    closes = [100.0 * (1.0005**i) * (1.001 if i % 2 else 0.999) for i in range(60)]
    closes[30] = closes[29]  # an unchanged close
    closes[40] = closes[39] * 1.5  # a jump (and the fall back the bar after)
    bars = _bars("A", days, closes)
    bars = bars.with_columns(
        pl.when(pl.int_range(pl.len()) == 5).then(0.0).otherwise(pl.col("volume")).alias("volume")
    )
    flags = quality_flags(bars, today=date(2024, 3, 15))
    row = flags.row(0, named=True)
    assert row["zero_volume"] == 1
    assert row["unchanged_close"] == 1
    assert row["return_jump"] == 2
    assert row["flat_bar"] == 0
    assert row["missing_adj_close"] == 0  # no adj_close column at all
    assert row["days_stale"] == (date(2024, 3, 15) - days[-1]).days
    assert row["stale"] is True


def _run(provider: str, cache: dict[str, int], **extra: object) -> dict[str, object]:
    return {"provider": provider, "quality": {"cache": cache}, **extra}


def test_cache_hit_rates_sum_outcomes_per_provider() -> None:
    runs = [
        _run("sample", {"miss": 1}),
        _run("sample", {"hit": 3}),
        _run("yahoo", {"refresh": 2}),
        {"provider": "yahoo", "quality": None},  # a failed run with no report
    ]
    rates = cache_hit_rates(runs)
    assert rates.select("provider", "runs", "hit", "miss", "refresh", "calls").rows() == [
        ("sample", 2, 3, 1, 0, 4),
        ("yahoo", 2, 0, 0, 2, 2),
    ]
    assert rates["hit_rate"].to_list() == [0.75, 0.0]
    assert cache_hit_rates([]).is_empty()


def test_ingest_run_frame_flattens_the_quality_report() -> None:
    started = datetime(2024, 1, 1, tzinfo=UTC)
    run = {
        "id": 7,
        "provider": "sample",
        "interval": "1d",
        "symbols": ["SPX", "IXIC"],
        "status": "succeeded",
        "rows_fetched": 10,
        "rows_upserted": 9,
        "rows_rejected": 1,
        "quality": {"calendar_gaps": 2, "rejected": {"negative_volume": 1}, "cache": {"miss": 1}},
        "started_at": started,
        "finished_at": started + timedelta(seconds=1.5),
        "error": None,
    }
    frame = ingest_run_frame([run])
    row = frame.row(0, named=True)
    assert row["symbols"] == 2
    assert row["rejected"] == "negative_volume=1"
    assert row["cache"] == "miss=1"
    assert row["calendar_gaps"] == 2
    assert row["seconds"] == 1.5
    assert ingest_run_frame([]).columns == frame.columns
