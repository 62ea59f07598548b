"""momentum against log returns computed with NumPy, symbol by symbol."""

from __future__ import annotations

import numpy as np
import pytest

from engine.schema import CLOSE


@pytest.mark.parametrize(
    ("lookback", "skip", "threshold", "short"),
    [(5, 0, 0.0, False), (5, 0, 0.0, True), (12, 3, 0.02, True), (20, 19, 0.01, False)],
)
def test_matches_numpy_log_returns(
    bars, evaluate, per_symbol, assert_targets, lookback, skip, threshold, short
) -> None:
    def reference(columns: dict[str, np.ndarray]) -> np.ndarray:
        log_close = np.log(columns[CLOSE])
        out = np.full(log_close.shape, np.nan)
        for t in range(lookback, log_close.size):
            trailing = log_close[t - skip] - log_close[t - lookback]
            if trailing > threshold:
                out[t] = 1.0
            elif trailing < -threshold and short:
                out[t] = -1.0
            else:
                out[t] = 0.0
        return out

    params = {"lookback": lookback, "skip": skip, "threshold": threshold, "short": short}
    targets = evaluate(bars, "momentum", params)
    assert_targets(targets, per_symbol(bars, reference))
    assert {1.0, -1.0 if short else 0.0} <= set(targets[~np.isnan(targets)].tolist())
