"""mean_reversion against a plain state machine stepping through each symbol's bars."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.schema import CLOSE


def _state_machine(
    close: np.ndarray, window: int, entry_z: float, exit_z: float, *, short: bool
) -> np.ndarray:
    out, state = np.full(close.shape, np.nan), 0.0
    for t in range(window - 1, close.size):
        recent = close[t - window + 1 : t + 1]
        spread = recent.std(ddof=1)
        z = (close[t] - recent.mean()) / spread if spread > 0 else math.nan
        if math.isnan(z):
            pass  # no z-score: keep the position
        elif z < -entry_z:
            state = 1.0
        elif short and z > entry_z:
            state = -1.0
        elif (state == 1.0 and z >= -exit_z) or (state == -1.0 and z <= exit_z):
            state = 0.0
        out[t] = state
    return out


@pytest.mark.parametrize(
    ("window", "entry_z", "exit_z", "short"),
    [(10, 1.2, 0.0, True), (10, 1.2, 0.3, True), (8, 1.0, 0.5, False), (20, 1.5, 0.2, True)],
)
def test_matches_a_state_machine(
    bars, evaluate, per_symbol, assert_targets, window, entry_z, exit_z, short
) -> None:
    expected = per_symbol(
        bars, lambda c: _state_machine(c[CLOSE], window, entry_z, exit_z, short=short)
    )
    params = {"window": window, "entry_z": entry_z, "exit_z": exit_z, "short": short}
    targets = evaluate(bars, "mean_reversion", params)
    assert_targets(targets, expected)
    held = set(targets[~np.isnan(targets)].tolist())
    assert held == ({-1.0, 0.0, 1.0} if short else {0.0, 1.0})


def test_bollinger_bands_are_the_same_rule(bars, evaluate) -> None:
    params = {"window": 10, "entry_z": 1.2, "exit_z": 0.3}
    np.testing.assert_array_equal(
        evaluate(bars, "mean_reversion", {**params, "band": "bollinger"}),
        evaluate(bars, "mean_reversion", {**params, "band": "zscore"}),
    )
