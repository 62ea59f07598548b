"""vol_target against realized volatility computed with NumPy, symbol by symbol."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.schema import CLOSE


@pytest.mark.parametrize(("window", "periods_per_year"), [(10, 252), (2, 252), (21, 365)])
def test_matches_numpy_realized_vol(
    bars, evaluate, per_symbol, assert_targets, window, periods_per_year
) -> None:
    vol_target, max_leverage = 0.3, 1.3

    def reference(columns: dict[str, np.ndarray]) -> np.ndarray:
        returns = np.diff(np.log(columns[CLOSE]), prepend=np.nan)
        out = np.full(returns.shape, np.nan)
        for t in range(window, returns.size):
            sigma = returns[t - window + 1 : t + 1].std(ddof=1) * math.sqrt(periods_per_year)
            out[t] = min(max_leverage, vol_target / sigma)
        return out

    params = {
        "vol_target": vol_target,
        "window": window,
        "max_leverage": max_leverage,
        "periods_per_year": periods_per_year,
    }
    targets = evaluate(bars, "vol_target", params)
    assert_targets(targets, per_symbol(bars, reference))
    present = targets[~np.isnan(targets)]
    assert (present == max_leverage).any()
    assert (present < max_leverage).any()


def test_flat_prices_get_the_leverage_cap(make_bars, evaluate) -> None:
    frame = make_bars({"AAA": 30}).with_columns(**{CLOSE: 100.0})
    targets = evaluate(frame, "vol_target", {"window": 5, "max_leverage": 1.5})
    np.testing.assert_array_equal(targets[5:], 1.5)
