"""Every registered strategy keeps the contract: causal targets, no leak across symbols,
null or 0 during its warm-up, params validated before any computation and stored as JSON."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import polars as pl
import pytest

from engine.schema import CLOSE, HIGH, LOW, OPEN, SYMBOL, VOLUME
from engine.strategies.base import SpecError, get_strategy, strategy_names

SMALL_PARAMS: dict[str, dict[str, Any]] = {
    "buy_and_hold": {"weight": 0.8},
    "sma_crossover": {"fast": 3, "slow": 8, "short": True},
    "momentum": {"lookback": 10, "skip": 2, "threshold": 0.01, "short": True},
    "mean_reversion": {"window": 10, "entry_z": 1.2, "exit_z": 0.3},
    "vol_target": {"vol_target": 0.2, "window": 10, "max_leverage": 1.5},
    "regime_filter": {
        "base": "mean_reversion",
        "base_params": {"window": 10, "entry_z": 1.2},
        "regimes": (0, 2),
        "min_prob": 0.5,
    },
    "regime_allocation": {
        "weights": {"0": {"AAA": 0.7, "BBB": 0.3}, "1": {"BBB": 1.0}},
        "default": {"AAA": 0.5},
    },
}
"""Parameters that give varied targets on a few dozen bars (defaults for any other)."""

STRATEGIES = strategy_names()
PRICES = (OPEN, HIGH, LOW, CLOSE, VOLUME)
PROBABILITIES = ("regime_prob", "ref_regime_prob")
REGIMES = ("regime", "ref_regime")


def _garbage_after(frame: pl.DataFrame, cut: int, seed: int) -> pl.DataFrame:
    """`frame` with every price, volume and regime value of each symbol's bars after bar
    `cut` replaced by random values (regimes sometimes unknown)."""
    rng = np.random.default_rng(seed)
    later = frame["_row"].to_numpy() > cut
    count = int(later.sum())
    columns = []
    for name in (*PRICES, *PROBABILITIES, *REGIMES):
        values = frame[name].cast(pl.Float64).to_numpy().copy()
        if name in PRICES:
            values[later] = rng.uniform(0.5, 9_000.0, count)
        elif name in PROBABILITIES:
            values[later] = rng.uniform(0.0, 1.0, count)
        else:
            values[later] = np.where(rng.random(count) < 0.2, np.nan, rng.integers(0, 3, count))
        columns.append(pl.Series(name, values, nan_to_null=True).cast(frame.schema[name]))
    return frame.with_columns(columns)


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("cut", [0, 7, 20, 45])
def test_targets_never_look_ahead(bars, evaluate, name, cut) -> None:
    params = SMALL_PARAMS.get(name)
    before = bars["_row"].to_numpy() <= cut
    targets = evaluate(bars, name, params)
    for seed in range(3):
        changed = evaluate(_garbage_after(bars, cut, seed), name, params)
        np.testing.assert_array_equal(np.isnan(changed[before]), np.isnan(targets[before]))
        np.testing.assert_allclose(changed[before], targets[before], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", STRATEGIES)
def test_no_symbol_leaks_into_the_next(bars, evaluate, name) -> None:
    params = SMALL_PARAMS.get(name)
    together = evaluate(bars, name, params)
    alone = np.concatenate(
        [evaluate(group, name, params) for _, group in bars.group_by(SYMBOL, maintain_order=True)]
    )
    np.testing.assert_allclose(together, alone, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", STRATEGIES)
def test_warmup_bars_are_null_or_flat_and_then_targets_start(bars, evaluate, name) -> None:
    definition = get_strategy(name)
    params = definition.make(SMALL_PARAMS.get(name))
    assert definition.warmup is not None, f"{name} declares no warm-up"
    warmup = definition.warmup(params)
    targets = evaluate(bars, name, params)
    row = bars["_row"].to_numpy()
    assert np.all(np.isnan(targets[row < warmup]) | (targets[row < warmup] == 0.0))
    assert not np.isnan(targets[row >= warmup]).any()


@pytest.mark.parametrize("name", STRATEGIES)
def test_params_round_trip_through_json(name) -> None:
    definition = get_strategy(name)
    params = definition.make(SMALL_PARAMS.get(name))
    encoded = msgspec.json.encode(params)
    assert msgspec.json.decode(encoded, type=definition.params) == params
    assert definition.make(msgspec.json.decode(encoded)) == params
    assert definition.make({}) == definition.params()


def test_regime_strategies_say_so() -> None:
    uses = {name for name in STRATEGIES if get_strategy(name).params.uses_regimes}
    assert {"regime_filter", "regime_allocation"} <= uses
    assert not uses & {"buy_and_hold", "sma_crossover", "momentum", "mean_reversion"}


@pytest.mark.parametrize(
    ("name", "values", "message"),
    [
        (
            "sma_crossover",
            {"fast": 20, "slow": 10},
            r"slow \(10\) must be greater than fast \(20\)",
        ),
        (
            "sma_crossover",
            {"fast": 20, "slow": 20},
            r"slow \(20\) must be greater than fast \(20\)",
        ),
        ("sma_crossover", {"fast": 0}, "fast must be >= 1, got 0"),
        ("sma_crossover", {"fats": 3}, "unknown field `fats`"),
        ("sma_crossover", {"kind": "wma"}, "kind"),
        ("mean_reversion", {"window": -5}, "window must be >= 2, got -5"),
        ("mean_reversion", {"exit_z": 2.0}, r"exit_z must be in \[0, entry_z\)"),
        ("momentum", {"lookback": 12, "skip": 12}, r"skip must be in \[0, lookback\)"),
        ("momentum", {"threshold": -0.1}, "threshold must be a finite number >= 0"),
        ("vol_target", {"window": 1}, "window must be >= 2, got 1"),
        ("vol_target", {"max_leverage": 0}, r"max_leverage must be in \(0, 10\]"),
        ("buy_and_hold", {"weight": float("nan")}, r"weight must be a number in \[-10, 10\]"),
        ("regime_filter", {"base": "nope"}, "unknown strategy 'nope'; known strategies: "),
        ("regime_filter", {"base": "regime_filter"}, "base must be a strategy without"),
        (
            "regime_filter",
            {"base": "sma_crossover", "base_params": {"fast": 20, "slow": 10}},
            r"slow \(10\) must be greater than fast \(20\)",
        ),
        ("regime_filter", {"regimes": ()}, "regimes must name at least one regime"),
        ("regime_filter", {"regimes": (0, -1)}, "regimes must be >= 0"),
        ("regime_filter", {"min_prob": 1.0}, r"min_prob must be in \[0, 1\)"),
        (
            "regime_allocation",
            {"weights": {"bull": {"SPY": 1.0}}},
            "regime key 'bull' is not an integer",
        ),
        ("regime_allocation", {"weights": {"-1": {"SPY": 1.0}}}, "regime key '-1' must be >= 0"),
        (
            "regime_allocation",
            {"weights": {"1": {"SPY": 1.0}, "01": {"SPY": 0.5}}},
            "regime keys '1' and '01' name the same regime",
        ),
        (
            "regime_allocation",
            {"weights": {"0": {"SPY": 6.0, "TLT": -5.0}}},
            r"weights\['0'\]: sum of \|weight\| is 11, must be <= 10",
        ),
        (
            "regime_allocation",
            {"default": {"SPY": float("inf")}},
            r"default\['SPY'\] must be finite",
        ),
    ],
)
def test_bad_params_are_rejected_with_a_clear_message(name, values, message) -> None:
    with pytest.raises(SpecError, match=message) as raised:
        get_strategy(name).make(values)
    assert str(raised.value).startswith(f"strategy {name!r}: ")


def test_unknown_strategy_names_the_known_ones() -> None:
    with pytest.raises(
        SpecError, match=r"unknown strategy 'nope'; known strategies: .*sma_crossover"
    ):
        get_strategy("nope")
