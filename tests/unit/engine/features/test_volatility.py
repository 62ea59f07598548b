"""Realized, Parkinson and Garman-Klass volatility per symbol, both forms, against NumPy."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from engine.features.volatility import garman_klass_vol, parkinson_vol, realized_vol
from engine.schema import CLOSE, HIGH, LOW, OPEN

ANNUAL = math.sqrt(252)


@pytest.mark.parametrize("window", [2, 5, 20])
def test_realized_vol(bars, presorted, reference, trailing, assert_matches, window) -> None:
    def per_symbol(c: dict[str, np.ndarray]) -> np.ndarray:
        returns = np.concatenate([[np.nan], np.diff(np.log(c[CLOSE]))])
        return trailing(returns, window, lambda w: float(np.std(w, ddof=1))) * ANNUAL

    result = bars.select(realized_vol(window, presorted=presorted)).to_series()
    assert_matches(result, reference(bars, per_symbol))


def test_realized_vol_annualization(bars, presorted, assert_matches) -> None:
    daily = bars.select(realized_vol(5, 1, presorted=presorted)).to_series()
    yearly = bars.select(realized_vol(5, 252, presorted=presorted)).to_series()
    assert_matches(yearly, daily.to_numpy() * ANNUAL)


def test_parkinson_vol(bars, presorted, reference, trailing, assert_matches) -> None:
    def per_symbol(c: dict[str, np.ndarray]) -> np.ndarray:
        range_sq = np.log(c[HIGH] / c[LOW]) ** 2
        mean = trailing(range_sq, 5, lambda w: float(w.mean()))
        return np.sqrt(mean / (4 * math.log(2))) * ANNUAL

    result = bars.select(parkinson_vol(5, presorted=presorted)).to_series()
    assert_matches(result, reference(bars, per_symbol))


def test_garman_klass_vol(bars, presorted, reference, trailing, assert_matches) -> None:
    def per_symbol(c: dict[str, np.ndarray]) -> np.ndarray:
        per_bar = (
            0.5 * np.log(c[HIGH] / c[LOW]) ** 2
            - (2 * math.log(2) - 1) * np.log(c[CLOSE] / c[OPEN]) ** 2
        )
        mean = trailing(per_bar, 5, lambda w: float(w.mean()))
        return np.sqrt(np.maximum(mean, 0.0)) * ANNUAL

    result = bars.select(garman_klass_vol(5, presorted=presorted)).to_series()
    assert_matches(result, reference(bars, per_symbol))


def test_symbol_shorter_than_the_window_gets_no_value(make_bars, presorted) -> None:
    frame = make_bars({"AAA": 30, "BBB": 4})
    result = frame.with_columns(realized_vol(5, presorted=presorted).alias("vol"))
    assert result.filter(pl.col("symbol") == "BBB")["vol"].null_count() == 4
    assert result.filter(pl.col("symbol") == "AAA")["vol"].null_count() == 5


def test_flat_prices_have_zero_vol_even_after_a_volatile_symbol(make_bars, presorted) -> None:
    """A sliding sum would carry the previous symbol's rounding into the next one."""
    frame = make_bars({"AAA": 40, "BBB": 40}).with_columns(
        pl.when(pl.col("symbol") == "BBB").then(123.45).otherwise(pl.col(c)).alias(c)
        for c in (OPEN, HIGH, LOW, CLOSE)
    )
    vols = frame.select(
        realized_vol(5, presorted=presorted).alias("realized"),
        parkinson_vol(5, presorted=presorted).alias("parkinson"),
        garman_klass_vol(5, presorted=presorted).alias("garman_klass"),
    ).filter(frame["symbol"] == "BBB")
    for name in vols.columns:
        assert vols[name].drop_nulls().to_list() == [0.0] * (40 - (5 if name == "realized" else 4))


@pytest.mark.parametrize("bad", [1, 0, -3, 2.5, True])
def test_window_must_be_an_integer_of_at_least_two(bad: object) -> None:
    with pytest.raises(ValueError, match="window must be an integer >= 2"):
        realized_vol(bad)
