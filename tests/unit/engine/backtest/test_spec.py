"""Backtest specs: validated before any data is read, stored and decoded exactly."""

from __future__ import annotations

from typing import Any

import pytest

from engine.backtest.spec import BacktestSpec, expand_grid, parse_grid
from engine.strategies.base import SpecError


def _spec(**overrides: Any) -> dict[str, Any]:
    return {"strategy": "sma_crossover", "symbols": ["SPX"], **overrides}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"strategy": "sma_crossoverr"}, "unknown strategy 'sma_crossoverr'; known strategies: "),
        ({"params": {"fast": 50, "slow": 20}}, "slow (20) must be greater than fast (50)"),
        ({"grid": {"fast": [10, 300]}}, "slow (200) must be greater than fast (300)"),
        ({"symbols": []}, "the universe is empty"),
        ({"symbols": ["A", "A"]}, "symbols must not repeat"),
        ({"execution": {"fees_bps": -1}}, "fees_bps must be in [0, 10000), got -1"),
        ({"execution": {"slippage_bps": -2}}, "slippage_bps must be in [0, 10000)"),
        ({"execution": {"price": "vwap"}}, "Invalid enum value 'vwap' - at `$.execution.price`"),
        ({"sizing": {"max_leverage": 0}}, "max_leverage must be in (0, 10]"),
        ({"params": {"fast": 10}, "grid": {"fast": [5]}}, "both fixed and in the grid: ['fast']"),
        ({"grid": {"fast": []}}, "grid parameter 'fast' has no values"),
        ({"params": {"speed": 3}}, "Object contains unknown field `speed`"),
        ({"start": "2020-01-02", "end": "2020-01-01"}, "start 2020-01-02 is after end 2020-01-01"),
        ({"strategy": "regime_filter"}, "strategy 'regime_filter' needs regimes.model"),
        ({"colour": "red"}, "unknown field `colour`"),
    ],
)
def test_bad_specs_are_rejected_with_a_clear_message(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError) as error:
        BacktestSpec.parse(_spec(**overrides))
    assert message in str(error.value)


def test_a_spec_round_trips_through_json() -> None:
    spec = BacktestSpec.parse(
        _spec(
            grid={"fast": [10, 20], "slow": [100, 150]},
            execution={"fees_bps": 10, "price": "open"},
            regimes={"model": "hmm"},
            start="2010-01-04",
        )
    )
    assert BacktestSpec.parse(spec.encode()) == spec
    assert BacktestSpec.parse(spec.to_builtins()) == spec
    assert [(p.fast, p.slow) for p in spec.param_sets()] == [  # type: ignore[attr-defined]
        (10, 100),
        (10, 150),
        (20, 100),
        (20, 150),
    ]


def test_bad_json_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="not valid JSON"):
        BacktestSpec.parse("{nope")


def test_grid_items_parse_ranges_lists_and_scalars() -> None:
    grid = parse_grid(["fast=10:50:10", "slow=100,150", "kind=ema", "z=0.5:1.5:0.5"])
    assert grid == {
        "fast": (10, 20, 30, 40, 50),
        "slow": (100, 150),
        "kind": ("ema",),
        "z": (0.5, 1.0, 1.5),
    }
    assert len(expand_grid(grid)) == 5 * 2 * 1 * 3
    assert expand_grid({}) == [{}]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("fast", "is not k=a:b:step"),
        ("fast=10:5:1", "is empty"),
        ("fast=1:5:0", "step > 0"),
        ("fast=1:5", "start:stop:step"),
        ("fast=a:b:c", "could not convert"),
    ],
)
def test_bad_grid_items_are_rejected(item: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_grid([item])
