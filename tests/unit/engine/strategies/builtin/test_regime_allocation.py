"""regime_allocation: each symbol's weight for the reference symbol's regime at the bar."""

from __future__ import annotations

import numpy as np


def test_weights_follow_the_reference_regime(bars, evaluate, per_symbol) -> None:
    weights = {"0": {"AAA": 0.6, "BBB": 0.4}, "2": {"BBB": -0.5}}
    default = {"AAA": 0.25}

    def reference(columns: dict[str, np.ndarray]) -> np.ndarray:
        out = []
        for symbol, ref_regime in zip(columns["symbol"], columns["ref_regime"], strict=True):
            allocation = weights.get(str(ref_regime), default)  # unknown regimes are -1
            out.append(allocation.get(symbol, 0.0))
        return np.array(out)

    targets = evaluate(bars, "regime_allocation", {"weights": weights, "default": default})
    np.testing.assert_array_equal(targets, per_symbol(bars, reference))
    assert {0.6, 0.4, -0.5, 0.25, 0.0} <= set(targets.tolist())


def test_flat_everywhere_without_weights(bars, evaluate) -> None:
    np.testing.assert_array_equal(evaluate(bars, "regime_allocation"), 0.0)
