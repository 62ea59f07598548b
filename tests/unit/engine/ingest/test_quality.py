"""Data-quality checks on fetched bars: reject rules, duplicates, ordering, calendar gaps."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from engine.ingest.quality import REJECT_RULES, QualityReport, calendar_gaps, check_bars
from engine.schema import CLOSE, HIGH, LOW, OPEN, REGIME, SYMBOL, TS, VOLUME

NAN, INF = math.nan, math.inf

# The NYSE sessions of January 2024 (New Year's Day and MLK day, 1 and 15 January, closed).
JANUARY_2024_SESSIONS = [
    date(2024, 1, d)
    for d in (2, 3, 4, 5, 8, 9, 10, 11, 12, 16, 17, 18, 19, 22, 23, 24, 25, 26, 29, 30, 31)
]


def day(d: int) -> datetime:
    return datetime(2024, 1, d, tzinfo=UTC)


def bar(symbol: str = "SPY", d: int = 2, **values: Any) -> dict[str, Any]:
    """One consistent bar on 2024-01-`d`; `values` override open/high/low/close/volume."""
    assert set(values) <= {OPEN, HIGH, LOW, CLOSE, VOLUME}, values
    return {
        SYMBOL: symbol,
        TS: day(d),
        OPEN: 100.0,
        HIGH: 102.0,
        LOW: 99.0,
        CLOSE: 101.0,
        VOLUME: 1_000.0,
        **values,
    }


def frame(*bars: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(
        list(bars),
        schema={
            SYMBOL: pl.String,
            TS: pl.Datetime("us", "UTC"),
            OPEN: pl.Float64,
            HIGH: pl.Float64,
            LOW: pl.Float64,
            CLOSE: pl.Float64,
            VOLUME: pl.Float64,
        },
    )


def daily(symbol: str, days: list[date]) -> pl.DataFrame:
    return frame(
        *(bar(symbol, d.day) | {TS: datetime(d.year, d.month, d.day, tzinfo=UTC)} for d in days)
    )


# --- reject rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "bad"),
    [
        ("missing_value", {CLOSE: None}),
        ("missing_value", {OPEN: NAN}),
        ("missing_value", {VOLUME: None}),
        ("missing_value", {VOLUME: NAN}),
        ("non_positive_price", {LOW: 0.0}),
        ("non_positive_price", {OPEN: 0.0, LOW: 0.0}),
        ("high_below_open_close", {HIGH: 100.5}),  # below the close of 101
        ("high_below_open_close", {OPEN: 103.0, CLOSE: 100.0}),  # open above the high of 102
        ("low_above_open_close", {LOW: 100.5}),  # above the open of 100
        ("low_above_open_close", {CLOSE: 98.0}),  # close below the low of 99
        ("negative_volume", {VOLUME: -1.0}),
        ("infinite_value", {VOLUME: INF}),
        ("infinite_value", {HIGH: INF}),
    ],
)
def test_each_reject_rule_counts_and_removes_its_row(reason: str, bad: dict[str, Any]) -> None:
    bars = frame(bar(d=2), bar(d=3, **bad), bar(d=4))

    clean, report = check_bars(bars)

    assert report.rejected == {reason: 1}
    assert clean[TS].to_list() == [day(2), day(4)]
    assert (report.rows_in, report.rows_out, report.rows_invalid) == (3, 2, 1)
    assert len(report.rejected_examples) == 1
    assert report.rejected_examples[0][TS] == day(3).isoformat()
    assert report.rejected_examples[0]["reasons"] == [reason]


def test_the_rules_are_the_documented_reasons() -> None:
    assert list(REJECT_RULES) == [
        "missing_value",
        "non_positive_price",
        "high_below_open_close",
        "low_above_open_close",
        "negative_volume",
        "infinite_value",
    ]


def test_a_bar_touching_its_high_and_low_is_accepted() -> None:
    flat = bar(open=50.0, high=50.0, low=50.0, close=50.0, volume=0.0)

    clean, report = check_bars(frame(flat))

    assert report.rejected == {}
    assert clean.height == 1


def test_every_reason_of_a_row_is_counted_and_listed() -> None:
    # open 0 is non-positive, and the low of 99 is then above min(open, close).
    clean, report = check_bars(frame(bar(open=0.0), bar(d=3)))

    assert report.rejected == {"non_positive_price": 1, "low_above_open_close": 1}
    assert report.rejected_examples[0]["reasons"] == [
        "non_positive_price",
        "low_above_open_close",
    ]
    assert clean.height == 1


def test_rejected_examples_keep_the_rows_values_with_iso_timestamps() -> None:
    _, report = check_bars(frame(bar("QQQ", 5, volume=-7.0)))

    example = report.rejected_examples[0]
    assert {k: v for k, v in example.items() if k != "reasons"} == {
        SYMBOL: "QQQ",
        TS: "2024-01-05T00:00:00+00:00",
        OPEN: 100.0,
        HIGH: 102.0,
        LOW: 99.0,
        CLOSE: 101.0,
        VOLUME: -7.0,
    }


def test_at_most_five_rejected_examples_per_batch_but_every_row_is_counted() -> None:
    bars = frame(*(bar(d=d, volume=-1.0) for d in range(2, 10)), bar(d=10))

    clean, report = check_bars(bars)

    assert report.rejected == {"negative_volume": 8}
    assert [e[TS] for e in report.rejected_examples] == [day(d).isoformat() for d in range(2, 7)]
    assert clean.height == 1


def test_rejected_example_reasons_are_a_plain_list_of_str() -> None:
    _, report = check_bars(frame(bar(volume=-1.0)))

    assert report.rejected_examples[0]["reasons"] == ["negative_volume"]
    assert type(report.rejected_examples[0]["reasons"]) is list


def test_a_row_broken_in_two_ways_is_one_rejected_row() -> None:
    _, report = check_bars(frame(bar(d=2, open=0.0), bar(d=3)))

    assert sum(report.rejected.values()) == 2
    assert report.rows_invalid == 1
    assert report.rows_rejected == 1
    assert report.rows_in == report.rows_out + report.rows_rejected


@pytest.mark.parametrize("column", [TS, SYMBOL])
def test_a_null_key_column_is_a_missing_value(column: str) -> None:
    clean, report = check_bars(frame(bar(d=2), bar(d=3) | {column: None}))

    assert report.rejected == {"missing_value": 1}
    assert clean.height == 1


# --- duplicates and order ------------------------------------------------------------------


def test_duplicate_timestamps_keep_the_last_row_in_source_order() -> None:
    bars = frame(bar(d=2, close=100.5), bar(d=3), bar(d=2, close=101.5), bar(d=2, close=100.8))

    clean, report = check_bars(bars)

    assert report.duplicate_ts == 2
    assert report.rows_out == 2
    assert clean.filter(pl.col(TS) == day(2))[CLOSE].to_list() == [100.8]
    assert report.rejected == {}


def test_duplicates_are_per_symbol() -> None:
    clean, report = check_bars(frame(bar("SPY", 2), bar("QQQ", 2)))

    assert report.duplicate_ts == 0
    assert clean.height == 2


def test_a_rejected_duplicate_leaves_the_valid_earlier_row() -> None:
    clean, report = check_bars(frame(bar(d=2, close=100.5), bar(d=2, volume=-1.0)))

    assert report.rejected == {"negative_volume": 1}
    assert report.duplicate_ts == 0
    assert clean[CLOSE].to_list() == [100.5]


def test_duplicates_count_towards_rows_rejected() -> None:
    _, report = check_bars(frame(bar(d=2), bar(d=2), bar(d=3, volume=-1.0)))

    assert report.rows_rejected == 2
    assert report.rows_in == report.rows_out + report.rows_rejected


@pytest.mark.parametrize(
    ("days", "out_of_order"),
    [
        ([2, 3, 4, 5], 0),
        ([2, 4, 3, 5], 1),
        ([5, 4, 3, 2], 3),
        ([3, 2, 3, 4], 1),  # the repeated 3 is a duplicate, not out of order
    ],
)
def test_out_of_order_rows_are_counted_and_the_output_is_sorted(
    days: list[int], out_of_order: int
) -> None:
    clean, report = check_bars(frame(*(bar(d=d) for d in days)))

    assert report.out_of_order == out_of_order
    assert clean[TS].to_list() == [day(d) for d in sorted(set(days))]


def test_order_is_judged_per_symbol_and_the_output_sorted_by_symbol_then_ts() -> None:
    bars = frame(bar("SPY", 3), bar("QQQ", 2), bar("SPY", 4), bar("QQQ", 3), bar("AAPL", 9))

    clean, report = check_bars(bars)

    assert report.out_of_order == 0
    assert clean.select(SYMBOL, TS).rows() == [
        ("AAPL", day(9)),
        ("QQQ", day(2)),
        ("QQQ", day(3)),
        ("SPY", day(3)),
        ("SPY", day(4)),
    ]


# --- clean and empty frames ----------------------------------------------------------------


def test_a_clean_sorted_frame_passes_unchanged() -> None:
    bars = frame(*(bar(s, d, close=100.0 + d / 10) for s in ("QQQ", "SPY") for d in range(2, 6)))

    clean, report = check_bars(bars)

    assert_frame_equal(clean, bars)
    assert report == QualityReport(rows_in=8, rows_out=8)
    assert report.rows_rejected == 0


def test_a_clean_unsorted_frame_keeps_its_values_and_extra_columns() -> None:
    bars = frame(bar("SPY", 3), bar("QQQ", 2), bar("SPY", 2)).with_columns(
        pl.Series(REGIME, [1, 0, 2], dtype=pl.Int32)
    )

    clean, report = check_bars(bars)

    assert_frame_equal(clean, bars.sort(SYMBOL, TS))
    assert report.rejected == {} and report.duplicate_ts == 0


def test_an_empty_frame_gives_an_empty_frame_and_a_zero_report() -> None:
    empty = frame()

    clean, report = check_bars(empty)

    assert_frame_equal(clean, empty)
    assert report == QualityReport()


def test_a_frame_with_every_row_rejected_is_empty_with_the_same_columns() -> None:
    bars = frame(bar(volume=-1.0), bar(d=3, close=None))

    clean, report = check_bars(bars)

    assert clean.is_empty()
    assert clean.schema == bars.schema
    assert report.rows_out == 0


# --- the report ------------------------------------------------------------------------


def sample_report(**overrides: Any) -> QualityReport:
    values: dict[str, Any] = {
        "rows_in": 10,
        "rows_out": 7,
        "rows_invalid": 2,
        "rejected": {"negative_volume": 2},
        "duplicate_ts": 1,
        "out_of_order": 3,
        "calendar_gaps": 1,
        "gap_examples": ["SPY 2024-01-05"],
        "rejected_examples": [{SYMBOL: "SPY", VOLUME: -1.0, "reasons": ["negative_volume"]}],
    }
    values.update(overrides)
    return QualityReport(**values)


def test_merge_adds_counts_and_combines_reasons() -> None:
    total = sample_report()
    total.merge(sample_report(rejected={"negative_volume": 1, "missing_value": 4}))

    assert total.rows_in == 20
    assert total.rows_out == 14
    assert total.rows_invalid == 4
    assert total.rejected == {"negative_volume": 3, "missing_value": 4}
    assert total.duplicate_ts == 2
    assert total.out_of_order == 6
    assert total.calendar_gaps == 2
    assert total.gap_examples == ["SPY 2024-01-05"] * 2
    assert len(total.rejected_examples) == 2


def test_merge_into_an_empty_report_copies_the_other() -> None:
    total = QualityReport()
    total.merge(sample_report())

    assert total == sample_report()


def test_merge_does_not_change_the_other_report() -> None:
    other = sample_report()
    QualityReport(rejected={"negative_volume": 5}).merge(other)

    assert other == sample_report()


def test_merged_examples_are_capped_at_ten() -> None:
    total = QualityReport()
    for i in range(4):
        total.merge(
            sample_report(
                gap_examples=[f"SPY {i}-{k}" for k in range(4)],
                rejected_examples=[{"batch": i, "row": k} for k in range(4)],
            )
        )

    assert total.gap_examples == [f"SPY {i}-{k}" for i in range(3) for k in range(4)][:10]
    assert len(total.rejected_examples) == 10
    assert total.rejected_examples[0] == {"batch": 0, "row": 0}


def test_as_json_round_trips_through_json() -> None:
    report = sample_report()

    restored = QualityReport(**json.loads(json.dumps(report.as_json(), allow_nan=False)))

    assert restored == report


def test_as_json_names_every_field() -> None:
    assert set(QualityReport().as_json()) == {
        "rows_in",
        "rows_out",
        "rows_invalid",
        "rejected",
        "duplicate_ts",
        "out_of_order",
        "calendar_gaps",
        "gap_examples",
        "rejected_examples",
    }


def test_a_checked_clean_batch_report_is_json_serializable() -> None:
    _, report = check_bars(frame(bar(d=3), bar(d=2), bar(d=2)))

    assert json.loads(json.dumps(report.as_json())) == report.as_json()


def test_a_report_with_rejected_rows_is_json_serializable() -> None:
    _, report = check_bars(frame(bar(d=2, volume=-1.0), bar(d=3)))

    restored = json.loads(json.dumps(report.as_json()))

    assert restored["rejected_examples"][0]["reasons"] == ["negative_volume"]


@pytest.mark.parametrize("bad", [{CLOSE: NAN}, {HIGH: INF}])
def test_rejected_example_values_are_strict_json(bad: dict[str, Any]) -> None:
    _, report = check_bars(frame(bar(**bad)))

    values = {k: v for k, v in report.rejected_examples[0].items() if k != "reasons"}
    json.dumps(values, allow_nan=False)


# --- calendar gaps -------------------------------------------------------------------------


def test_no_gaps_for_an_empty_frame() -> None:
    assert calendar_gaps(frame(), "XNYS") == (0, [])


def test_an_unknown_calendar_reports_no_gaps() -> None:
    bars = daily("SPY", JANUARY_2024_SESSIONS[::3])

    assert calendar_gaps(bars, "NOT-A-CALENDAR") == (0, [])


def test_a_full_month_of_sessions_has_no_gaps() -> None:
    assert calendar_gaps(daily("SPY", JANUARY_2024_SESSIONS), "XNYS") == (0, [])


def test_bars_on_weekends_and_holidays_are_not_gaps_nor_needed() -> None:
    every_day = [date(2024, 1, 2) + timedelta(days=i) for i in range(30)]

    assert calendar_gaps(daily("BTC", every_day), "XNYS") == (0, [])


def test_three_missing_sessions_are_three_gaps_named_in_the_examples() -> None:
    missing = [date(2024, 1, 5), date(2024, 1, 11), date(2024, 1, 19)]
    bars = daily("SPY", [d for d in JANUARY_2024_SESSIONS if d not in missing])

    assert calendar_gaps(bars, "XNYS") == (
        3,
        ["SPY 2024-01-05", "SPY 2024-01-11", "SPY 2024-01-19"],
    )


def test_the_mlk_holiday_and_weekends_never_count_as_gaps() -> None:
    # Friday 12th to Wednesday 17th with only the 16th missing: one gap, not three or four.
    bars = daily("SPY", [date(2024, 1, 12), date(2024, 1, 17)])

    assert calendar_gaps(bars, "XNYS") == (1, ["SPY 2024-01-16"])


def test_gaps_are_counted_within_each_symbols_own_span() -> None:
    bars = pl.concat(
        [
            daily("SPY", [date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 5)]),  # 4th missing
            daily("QQQ", [date(2024, 1, 22), date(2024, 1, 24)]),  # 23rd missing
        ]
    )

    assert calendar_gaps(bars, "XNYS") == (2, ["QQQ 2024-01-23", "SPY 2024-01-04"])


def test_gap_examples_are_capped_at_ten_but_all_gaps_are_counted() -> None:
    bars = daily("SPY", [JANUARY_2024_SESSIONS[0], JANUARY_2024_SESSIONS[-1]])

    count, examples = calendar_gaps(bars, "XNYS")

    assert count == len(JANUARY_2024_SESSIONS) - 2
    assert examples == [f"SPY {d.isoformat()}" for d in JANUARY_2024_SESSIONS[1:11]]


def test_gaps_are_found_when_the_first_bar_falls_on_a_holiday() -> None:
    bars = daily("SPY", [date(2024, 1, 1), *(d for d in JANUARY_2024_SESSIONS if d.day != 9)])

    assert calendar_gaps(bars, "XNYS") == (1, ["SPY 2024-01-09"])


def test_intraday_bars_count_their_day_once() -> None:
    bars = frame(
        bar(d=2) | {TS: datetime(2024, 1, 2, 14, 30, tzinfo=UTC)},
        bar(d=2) | {TS: datetime(2024, 1, 2, 20, 0, tzinfo=UTC)},
        bar(d=3) | {TS: datetime(2024, 1, 3, 14, 30, tzinfo=UTC)},
    )

    assert calendar_gaps(bars, "XNYS") == (0, [])


def test_a_single_bar_has_no_gaps_and_does_not_fail() -> None:
    """An incremental load often brings one bar: the calendar span is a single day."""
    one = pl.DataFrame(
        {SYMBOL: ["SPX"], TS: [datetime(2018, 12, 31, tzinfo=UTC)]},
        schema={SYMBOL: pl.String, TS: pl.Datetime("us", "UTC")},
    )
    assert calendar_gaps(one, "XNYS") == (0, [])
