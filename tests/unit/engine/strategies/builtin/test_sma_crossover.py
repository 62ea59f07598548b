"""sma_crossover against moving averages computed with NumPy, symbol by symbol."""

from __future__ import annotations

import numpy as np
import pytest

from engine.schema import CLOSE


def _sma(values: np.ndarray, window: int) -> np.ndarray:
    out = np.full(values.shape, np.nan)
    out[window - 1 :] = np.convolve(values, np.ones(window) / window, mode="valid")
    return out


def _ema(values: np.ndarray, span: int) -> np.ndarray:
    alpha, out = 2.0 / (span + 1.0), np.empty_like(values)
    out[0] = values[0]
    for t in range(1, values.size):
        out[t] = alpha * values[t] + (1.0 - alpha) * out[t - 1]
    return out


@pytest.mark.parametrize(
    ("fast", "slow", "kind", "short"),
    [(3, 8, "sma", False), (3, 8, "sma", True), (1, 20, "sma", False), (5, 21, "ema", True)],
)
def test_matches_numpy_moving_averages(
    bars, evaluate, per_symbol, assert_targets, fast, slow, kind, short
) -> None:
    average = _sma if kind == "sma" else _ema

    def reference(columns: dict[str, np.ndarray]) -> np.ndarray:
        close = columns[CLOSE]
        above = average(close, fast) > average(close, slow)
        out = np.where(above, 1.0, -1.0 if short else 0.0)
        out[: slow - 1] = np.nan
        return out

    params = {"fast": fast, "slow": slow, "kind": kind, "short": short}
    targets = evaluate(bars, "sma_crossover", params)
    assert_targets(targets, per_symbol(bars, reference))
    assert {1.0, -1.0 if short else 0.0} <= set(targets[~np.isnan(targets)].tolist())


def test_null_while_the_slow_average_warms_up(make_bars, evaluate) -> None:
    targets = evaluate(make_bars({"AAA": 30}), "sma_crossover", {"fast": 5, "slow": 31})
    assert np.isnan(targets).all()
