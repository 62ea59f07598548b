"""`validate_bars`: the canonical bar frame every boundary checks (columns, dtypes, order)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import polars as pl
import pytest

from engine.schema import (
    ADJ_CLOSE,
    BAR_SCHEMA,
    CLOSE,
    HIGH,
    LOW,
    OPEN,
    REGIME,
    SYMBOL,
    TS,
    VOLUME,
    validate_bars,
)

CANONICAL = [SYMBOL, TS, OPEN, HIGH, LOW, CLOSE, VOLUME]


def bars(**overrides: Any) -> pl.DataFrame:
    """Two bars, deliberately not sorted (B before A, later day first), int prices."""
    columns: dict[str, Any] = {
        SYMBOL: ["B", "A"],
        TS: [datetime(2024, 1, 3, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)],
        OPEN: [10, 20],
        HIGH: [12, 22],
        LOW: [9, 19],
        CLOSE: [11, 21],
        VOLUME: [1_000, 2_000],
    }
    columns.update(overrides)
    return pl.DataFrame(columns)


def test_bar_schema_is_the_canonical_columns_in_order() -> None:
    assert list(BAR_SCHEMA) == CANONICAL
    assert BAR_SCHEMA[TS] == pl.Datetime("us", "UTC")
    assert all(BAR_SCHEMA[c] == pl.Float64 for c in (OPEN, HIGH, LOW, CLOSE, VOLUME))


def test_int_prices_and_volume_are_cast_to_float64() -> None:
    frame = validate_bars(bars())

    assert frame.schema == BAR_SCHEMA
    assert frame[OPEN].to_list() == [10.0, 20.0]
    assert frame[VOLUME].to_list() == [1_000.0, 2_000.0]


def test_row_order_is_kept_as_given() -> None:
    frame = validate_bars(bars())

    assert frame[SYMBOL].to_list() == ["B", "A"]
    assert frame[TS].to_list() == [
        datetime(2024, 1, 3, tzinfo=UTC),
        datetime(2024, 1, 2, tzinfo=UTC),
    ]


def test_columns_come_out_in_canonical_order_whatever_the_input_order() -> None:
    shuffled = bars().select(VOLUME, CLOSE, TS, SYMBOL, LOW, HIGH, OPEN)

    assert validate_bars(shuffled).columns == CANONICAL


def test_adj_close_and_regime_are_kept_and_typed() -> None:
    frame = validate_bars(bars(**{ADJ_CLOSE: [10, 20], REGIME: [0, 1]}))

    assert frame.columns == [*CANONICAL, ADJ_CLOSE, REGIME]
    assert frame.schema[ADJ_CLOSE] == pl.Float64
    assert frame.schema[REGIME] == pl.Int32
    assert frame[REGIME].to_list() == [0, 1]


def test_other_extra_columns_are_dropped() -> None:
    frame = validate_bars(bars(dividends=[0.1, 0.0], note=["x", "y"], __source_file=["a", "b"]))

    assert frame.columns == CANONICAL


@pytest.mark.parametrize("missing", CANONICAL)
def test_a_missing_canonical_column_is_named_in_the_error(missing: str) -> None:
    with pytest.raises(ValueError, match=rf"lacks column\(s\): {missing}$"):
        validate_bars(bars().drop(missing))


def test_every_missing_column_is_named() -> None:
    with pytest.raises(ValueError, match=r"lacks column\(s\): ts, volume"):
        validate_bars(bars().drop(TS, VOLUME))


@pytest.mark.parametrize("column", [OPEN, HIGH, LOW, CLOSE, VOLUME])
def test_non_numeric_string_prices_are_a_wrong_type_error(column: str) -> None:
    with pytest.raises(ValueError, match=rf"wrong type.*'{column}'"):
        validate_bars(bars(**{column: ["abc", "1.0"]}))


def test_string_timestamps_are_a_wrong_type_error() -> None:
    with pytest.raises(ValueError, match="wrong type"):
        validate_bars(bars(**{TS: ["2024-01-03", "2024-01-02"]}))


def test_a_non_integer_regime_label_is_a_wrong_type_error() -> None:
    with pytest.raises(ValueError, match=rf"wrong type.*'{REGIME}'"):
        validate_bars(bars(**{REGIME: ["calm", "turbulent"]}))


def test_wrong_type_error_is_a_plain_value_error_without_polars_chaining() -> None:
    with pytest.raises(ValueError) as caught:
        validate_bars(bars(**{CLOSE: ["abc", "def"]}))

    assert not isinstance(caught.value, pl.exceptions.PolarsError)
    assert caught.value.__cause__ is None
    assert "\n" not in str(caught.value)


def test_naive_timestamps_are_taken_as_utc() -> None:
    frame = validate_bars(bars(**{TS: [datetime(2024, 1, 3, 9, 30), datetime(2024, 1, 2)]}))

    assert frame.schema[TS] == pl.Datetime("us", "UTC")
    assert frame[TS][0] == datetime(2024, 1, 3, 9, 30, tzinfo=UTC)


def test_timestamps_in_another_zone_are_converted_to_utc() -> None:
    new_york = (
        pl.Series([datetime(2024, 1, 3, 9, 30), datetime(2024, 1, 2, 9, 30)])
        .dt.replace_time_zone("America/New_York")
        .cast(pl.Datetime("ms", "America/New_York"))
    )
    frame = validate_bars(bars(**{TS: new_york}))

    assert frame.schema[TS] == pl.Datetime("us", "UTC")
    assert frame[TS][0] == datetime(2024, 1, 3, 14, 30, tzinfo=UTC)


def test_dates_become_midnight_utc() -> None:
    frame = validate_bars(bars(**{TS: [date(2024, 1, 3), date(2024, 1, 2)]}))

    assert frame[TS].to_list() == [
        datetime(2024, 1, 3, tzinfo=UTC),
        datetime(2024, 1, 2, tzinfo=UTC),
    ]


def test_an_empty_frame_with_the_columns_validates_to_an_empty_canonical_frame() -> None:
    empty = pl.DataFrame(schema={c: pl.Int64 for c in CANONICAL if c not in (SYMBOL, TS)})
    empty = empty.with_columns(
        pl.lit(None, pl.String).alias(SYMBOL), pl.lit(None, pl.Datetime("us")).alias(TS)
    )

    frame = validate_bars(empty)

    assert frame.is_empty()
    assert frame.schema == BAR_SCHEMA
