"""Moving averages, trend slope and momentum per symbol, both forms, against NumPy."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from engine.features.trend import ema, momentum, sma, trend_slope
from engine.schema import CLOSE, HIGH, SYMBOL


@pytest.mark.parametrize("window", [1, 3, 10])
def test_sma(bars, presorted, reference, trailing, assert_matches, window) -> None:
    expected = reference(bars, lambda c: trailing(c[CLOSE], window, lambda w: float(w.mean())))
    assert_matches(bars.select(sma(window, presorted=presorted)).to_series(), expected)


def test_sma_of_an_expression(bars, presorted, reference, trailing, assert_matches) -> None:
    typical = (pl.col(HIGH) + pl.col(CLOSE)) / 2
    expected = reference(
        bars, lambda c: trailing((c[HIGH] + c[CLOSE]) / 2, 4, lambda w: float(w.mean()))
    )
    assert_matches(bars.select(sma(4, typical, presorted=presorted)).to_series(), expected)


def test_ema_is_the_recursion_from_each_symbols_first_bar(
    bars, presorted, reference, assert_matches
) -> None:
    def per_symbol(c: dict[str, np.ndarray]) -> np.ndarray:
        alpha, out = 2 / (5 + 1), np.empty_like(c[CLOSE])
        out[0] = c[CLOSE][0]
        for t in range(1, out.size):
            out[t] = alpha * c[CLOSE][t] + (1 - alpha) * out[t - 1]
        return out

    assert_matches(
        bars.select(ema(5, presorted=presorted)).to_series(), reference(bars, per_symbol)
    )


@pytest.mark.parametrize("window", [2, 5, 20])
def test_trend_slope_is_the_ols_slope_of_log_price(
    bars, presorted, reference, trailing, assert_matches, window
) -> None:
    def slope(values: np.ndarray) -> float:
        return float(np.polyfit(np.arange(values.size), values, 1)[0])

    expected = reference(bars, lambda c: trailing(np.log(c[CLOSE]), window, slope))
    result = bars.select(trend_slope(window, presorted=presorted)).to_series()
    assert_matches(result, expected, rtol=1e-8)


def test_trend_slope_of_an_exponential_trend_is_its_rate(make_bars, presorted) -> None:
    frame = make_bars({"AAA": 30}).with_columns(
        (50.0 * (0.002 * pl.int_range(pl.len())).exp()).alias(CLOSE)
    )
    slopes = frame.select(trend_slope(10, presorted=presorted)).to_series().drop_nulls()
    np.testing.assert_allclose(slopes.to_numpy(), 0.002, rtol=1e-9)


@pytest.mark.parametrize("window", [1, 5, 63])
def test_momentum(bars, presorted, reference, assert_matches, window) -> None:
    def per_symbol(c: dict[str, np.ndarray]) -> np.ndarray:
        out = np.full(c[CLOSE].shape, np.nan)
        out[window:] = np.log(c[CLOSE][window:] / c[CLOSE][:-window])
        return out

    assert_matches(
        bars.select(momentum(window, presorted=presorted)).to_series(), reference(bars, per_symbol)
    )


def test_windows_never_reach_into_the_previous_symbol(bars, presorted) -> None:
    result = bars.with_columns(
        sma(5, presorted=presorted).alias("sma"),
        trend_slope(5, presorted=presorted).alias("slope"),
        momentum(5, presorted=presorted).alias("momentum"),
    )
    first_bars = result.group_by(SYMBOL, maintain_order=True).head(4)
    assert first_bars.select("sma", "slope", "momentum").null_count().row(0) == (8, 8, 8)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: sma(0), "window must be an integer >= 1"),
        (lambda: trend_slope(1), "window must be an integer >= 2"),
        (lambda: momentum(0), "window must be an integer >= 1"),
        (lambda: ema(0.5), "span must be >= 1"),
    ],
)
def test_bad_windows(build, message) -> None:
    with pytest.raises(ValueError, match=message):
        build()
