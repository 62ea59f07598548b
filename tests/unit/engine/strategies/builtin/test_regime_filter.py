"""regime_filter: the base strategy's targets inside the chosen regimes, flat outside."""

from __future__ import annotations

import numpy as np
import pytest

from engine.strategies.base import get_strategy


def _inside(
    columns: dict[str, np.ndarray], regimes: tuple[int, ...], min_prob: float
) -> np.ndarray:
    """Bars in one of `regimes` (unknown regimes are -1 here) with enough probability."""
    return np.isin(columns["regime"], regimes) & (columns["regime_prob"] >= min_prob)


@pytest.mark.parametrize(("regimes", "min_prob"), [((1, 2), 0.5), ((0,), 0.0), ((2,), 0.9)])
def test_base_targets_inside_the_regimes(
    bars, evaluate, per_symbol, assert_targets, regimes, min_prob
) -> None:
    base_params = {"fast": 3, "slow": 8, "short": True}
    base = evaluate(bars, "sma_crossover", base_params)
    inside = per_symbol(bars, lambda c: _inside(c, regimes, min_prob))
    params = {
        "base": "sma_crossover",
        "base_params": base_params,
        "regimes": regimes,
        "min_prob": min_prob,
    }
    targets = evaluate(bars, "regime_filter", params)
    assert_targets(targets, np.where(inside == 1.0, base, 0.0))
    assert (inside == 0.0).any()
    assert (targets[inside == 1.0] == -1.0).any()


def test_buy_and_hold_in_the_first_regime_by_default(bars, evaluate, per_symbol) -> None:
    expected = per_symbol(bars, lambda c: (c["regime"] == 0).astype(float))
    np.testing.assert_array_equal(evaluate(bars, "regime_filter"), expected)


def test_flat_while_the_regime_is_unknown(bars, evaluate) -> None:
    unknown = bars["regime"].is_null().to_numpy()
    assert unknown.any()
    targets = evaluate(bars, "regime_filter", {"regimes": (0, 1, 2)})
    np.testing.assert_array_equal(targets[unknown], 0.0)
    np.testing.assert_array_equal(targets[~unknown], 1.0)


def test_warmup_is_the_base_strategys() -> None:
    definition = get_strategy("regime_filter")
    params = definition.make({"base": "sma_crossover", "base_params": {"fast": 3, "slow": 8}})
    assert definition.warmup is not None
    assert definition.warmup(params) == 7
