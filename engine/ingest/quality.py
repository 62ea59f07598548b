"""Data-quality checks on fetched bars, before anything reaches the database.

Rows with impossible values are rejected and counted by reason; duplicate timestamps keep
the provider's last row; out-of-order rows are counted, then sorted. Gaps are sessions of
the exchange calendar with no bar, reported (never invented).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import Any, Final

import polars as pl

from engine.schema import CLOSE, HIGH, LOW, OPEN, SYMBOL, TS, VOLUME

__all__ = ["REJECT_RULES", "QualityReport", "calendar_gaps", "check_bars"]

log = logging.getLogger(__name__)

_PRICES: Final = (OPEN, HIGH, LOW, CLOSE)

# reason -> expression that is True for a row to reject
REJECT_RULES: Final[dict[str, pl.Expr]] = {
    "missing_value": pl.any_horizontal(
        pl.col(SYMBOL).is_null(),
        pl.col(TS).is_null(),
        *(pl.col(c).is_null() | pl.col(c).is_nan() for c in (*_PRICES, VOLUME)),
    ),
    "non_positive_price": pl.any_horizontal(*(pl.col(c) <= 0 for c in _PRICES)),
    "high_below_open_close": pl.col(HIGH) < pl.max_horizontal(OPEN, CLOSE),
    "low_above_open_close": pl.col(LOW) > pl.min_horizontal(OPEN, CLOSE),
    "negative_volume": pl.col(VOLUME) < 0,
    "infinite_value": pl.any_horizontal(*(pl.col(c).is_infinite() for c in (*_PRICES, VOLUME))),
}


@dataclass(slots=True)
class QualityReport:
    """Counts per issue (all symbols of a run), plus a few rejected rows to look at."""

    rows_in: int = 0
    rows_out: int = 0
    rows_invalid: int = 0
    """Rows rejected by at least one rule (a row may break several: see `rejected`)."""
    rejected: dict[str, int] = field(default_factory=dict)
    """Rows breaking each rule."""
    duplicate_ts: int = 0
    out_of_order: int = 0
    calendar_gaps: int = 0
    gap_examples: list[str] = field(default_factory=list)
    rejected_examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows_rejected(self) -> int:
        """Rows not loaded: rejected by a rule or dropped as a duplicate."""
        return self.rows_invalid + self.duplicate_ts

    def merge(self, other: QualityReport) -> None:
        """Add another batch's counts to these."""
        self.rows_in += other.rows_in
        self.rows_out += other.rows_out
        self.rows_invalid += other.rows_invalid
        for reason, count in other.rejected.items():
            self.rejected[reason] = self.rejected.get(reason, 0) + count
        self.duplicate_ts += other.duplicate_ts
        self.out_of_order += other.out_of_order
        self.calendar_gaps += other.calendar_gaps
        self.gap_examples = (self.gap_examples + other.gap_examples)[:10]
        self.rejected_examples = (self.rejected_examples + other.rejected_examples)[:10]

    def as_json(self) -> dict[str, Any]:
        """The report as stored in `ingest_runs.quality`."""
        return {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "rows_invalid": self.rows_invalid,
            "rejected": self.rejected,
            "duplicate_ts": self.duplicate_ts,
            "out_of_order": self.out_of_order,
            "calendar_gaps": self.calendar_gaps,
            "gap_examples": self.gap_examples,
            "rejected_examples": self.rejected_examples,
        }


def check_bars(frame: pl.DataFrame) -> tuple[pl.DataFrame, QualityReport]:
    """Rows fit to load (sorted by symbol, ts; unique) and what was wrong with the rest."""
    report = QualityReport(rows_in=frame.height)
    if frame.is_empty():
        return frame, report
    indexed = frame.with_row_index("__row")
    flags = indexed.select(
        "__row",
        *(rule.fill_null(False).alias(reason) for reason, rule in REJECT_RULES.items()),
        # out of order: earlier than the previous row of the same symbol, in source order
        (pl.col(TS) < pl.col(TS).shift(1).over(SYMBOL)).fill_null(False).alias("__out_of_order"),
    )
    report.out_of_order = int(flags["__out_of_order"].sum())
    bad = pl.any_horizontal(*(pl.col(reason) for reason in REJECT_RULES))
    counts = flags.select(pl.col(r).sum() for r in REJECT_RULES).row(0, named=True)
    report.rejected = {reason: int(n) for reason, n in counts.items() if n}
    rejected_rows = flags.filter(bad)["__row"]
    report.rows_invalid = len(rejected_rows)
    if len(rejected_rows):
        examples = indexed.filter(pl.col("__row").is_in(rejected_rows.head(5).implode()))
        reasons = (
            flags.filter(bad)
            .head(5)
            .select(
                pl.concat_list(
                    pl.when(pl.col(r)).then(pl.lit(r)) for r in REJECT_RULES
                ).list.drop_nulls()
            )
        )
        report.rejected_examples = [
            {**_jsonable(row), "reasons": why}
            for row, why in zip(
                examples.drop("__row").iter_rows(named=True),
                reasons.to_series().to_list(),
                strict=True,
            )
        ]
    good = indexed.join(flags.filter(bad).select("__row"), on="__row", how="anti")
    deduped = good.sort(SYMBOL, TS, "__row").unique(
        subset=[SYMBOL, TS], keep="last", maintain_order=True
    )
    report.duplicate_ts = good.height - deduped.height
    clean = deduped.drop("__row")
    report.rows_out = clean.height
    return clean, report


def _jsonable(value: Any) -> Any:
    """`value` as strict JSON (jsonb refuses NaN and Infinity, which rejected rows carry)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value.isoformat() if hasattr(value, "isoformat") else value


@lru_cache(maxsize=8)
def _sessions(calendar: str, first: date, last: date) -> pl.Series | None:
    """Trading days of `calendar` from `first` to `last`; None if the calendar is unknown."""
    import warnings

    import exchange_calendars as xcals

    try:
        with warnings.catch_warnings():  # pandas deprecation noise inside exchange_calendars
            warnings.simplefilter("ignore")
            # A calendar spanning the data (padded: it needs end > start) lists its sessions
            # without a range lookup, which would refuse a first or last bar on a holiday.
            cal = xcals.get_calendar(calendar, start=first, end=last + timedelta(days=7))
            sessions = [d for d in cal.sessions.date.tolist() if d <= last]
    except xcals.errors.InvalidCalendarName:
        return None
    except ValueError as exc:  # e.g. dates outside the calendar's data: report, don't fail
        log.warning("no gap report against %s for %s..%s: %s", calendar, first, last, exc)
        return None
    return pl.Series("day", sessions, dtype=pl.Date)


def calendar_gaps(frame: pl.DataFrame, calendar: str) -> tuple[int, list[str]]:
    """Sessions of `calendar` between each symbol's first and last daily bar with no bar."""
    if frame.is_empty():
        return 0, []
    days = frame.select(SYMBOL, pl.col(TS).dt.date().alias("day"))
    spans = days.group_by(SYMBOL).agg(
        pl.col("day").min().alias("first"), pl.col("day").max().alias("last")
    )
    first, last = spans["first"].min(), spans["last"].max()
    assert isinstance(first, date) and isinstance(last, date)
    known = _sessions(calendar, first, last)
    if known is None:
        return 0, []
    sessions = known.to_frame()
    expected = spans.join_where(
        sessions, pl.col("day") >= pl.col("first"), pl.col("day") <= pl.col("last")
    )
    missing = expected.join(days, on=[SYMBOL, "day"], how="anti").sort(SYMBOL, "day")
    examples = [
        f"{s} {d.isoformat()}" for s, d in missing.select(SYMBOL, "day").head(10).iter_rows()
    ]
    return missing.height, examples
