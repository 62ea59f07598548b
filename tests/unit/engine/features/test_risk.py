"""Drawdown and rolling z-scores per symbol, both forms, against NumPy."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from engine.features.risk import drawdown, rolling_zscore
from engine.features.volatility import realized_vol
from engine.schema import CLOSE, SYMBOL


def test_drawdown_from_the_running_peak(bars, presorted, reference, assert_matches) -> None:
    expected = reference(bars, lambda c: c[CLOSE] / np.maximum.accumulate(c[CLOSE]) - 1.0)
    result = bars.select(drawdown(presorted=presorted)).to_series()
    assert_matches(result, expected, rtol=0)
    assert (result <= 0).all()


def test_drawdown_peak_restarts_with_each_symbol(make_bars, presorted) -> None:
    # AAA trades near 100, BBB near 5,000: a peak leaking from one into the other shows
    frame = make_bars({"AAA": 20, "BBB": 20, "CCC": 20})
    result = frame.with_columns(drawdown(presorted=presorted).alias("dd"))
    assert result.group_by(SYMBOL).agg(pl.col("dd").first())["dd"].to_list() == [0.0] * 3


@pytest.mark.parametrize("window", [2, 5])
def test_rolling_zscore(bars, presorted, reference, trailing, assert_matches, window) -> None:
    def per_symbol(c: dict[str, np.ndarray]) -> np.ndarray:
        mean = trailing(c[CLOSE], window, lambda w: float(w.mean()))
        std = trailing(c[CLOSE], window, lambda w: float(np.std(w, ddof=1)))
        return (c[CLOSE] - mean) / std

    result = bars.select(rolling_zscore(CLOSE, window, presorted=presorted)).to_series()
    assert_matches(result, reference(bars, per_symbol), rtol=1e-8)


def test_zscore_is_null_where_the_window_has_no_spread(make_bars, presorted) -> None:
    frame = make_bars({"AAA": 30, "BBB": 30}).with_columns(
        pl.when(pl.col(SYMBOL) == "BBB").then(77.0).otherwise(pl.col(CLOSE)).alias(CLOSE)
    )
    result = frame.with_columns(rolling_zscore(CLOSE, 5, presorted=presorted).alias("z"))
    by_symbol = result.group_by(SYMBOL).agg(pl.col("z").null_count()).sort(SYMBOL)
    assert by_symbol["z"].to_list() == [4, 30]


def test_zscore_of_a_computed_column(bars, presorted) -> None:
    with_vol = bars.with_columns(realized_vol(3).alias("vol"))
    result = with_vol.select(rolling_zscore("vol", 4, presorted=presorted)).to_series()
    expected = with_vol.select(rolling_zscore("vol", 4)).to_series()
    # vol is null for 3 bars per symbol, so z needs 3 + 4 - 1 bars
    assert result.null_count() == expected.null_count() == 2 * 6
    np.testing.assert_allclose(result.drop_nulls(), expected.drop_nulls(), rtol=1e-10)


def test_zscore_window_must_be_at_least_two() -> None:
    with pytest.raises(ValueError, match="window must be an integer >= 2"):
        rolling_zscore(CLOSE, 1)
