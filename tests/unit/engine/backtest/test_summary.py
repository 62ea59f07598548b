"""Chart-ready backtest shapes and the API payloads that schedule a spec."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import polars as pl
import pytest

from api.domain.backtests.schemas import BacktestCreate, StrategyCreate
from engine.backtest.spec import BacktestSpec
from engine.backtest.summary import (
    backtest_payload,
    best_params,
    drawdown_frame,
    growth_curves,
    strategy_payload,
    sweep_surface,
)
from engine.backtest.walkforward import WalkForwardSpec


def _day(i: int) -> datetime:
    return datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=i)


def test_growth_curves_put_strategy_and_benchmark_on_one_scale() -> None:
    equity = pl.DataFrame(
        {
            "symbol": ["A"] * 3,
            "ts": [_day(2), _day(0), _day(1)],  # any order
            "equity": [90_000.0, 100_000.0, 120_000.0],
            "benchmark": [1.5, 1.0, 2.0],  # growth of 1 (single run) or cash (walk-forward)
        }
    )
    curves = growth_curves(equity)
    strategy = curves.filter(pl.col("series") == "strategy")["growth"].to_list()
    benchmark = curves.filter(pl.col("series") == "benchmark")["growth"].to_list()
    assert strategy == pytest.approx([1.0, 1.2, 0.9])
    assert benchmark == pytest.approx([1.0, 2.0, 1.5])
    drawdowns = drawdown_frame(curves).filter(pl.col("series") == "strategy")["drawdown"]
    assert drawdowns.to_list() == pytest.approx([0.0, 0.0, 0.9 / 1.2 - 1])


def test_growth_curves_label_the_strategy() -> None:
    equity = pl.DataFrame({"symbol": ["A"], "ts": [_day(0)], "equity": [5.0], "benchmark": [7.0]})
    assert set(growth_curves(equity, label="oos")["series"]) == {"oos", "benchmark"}


def test_sweep_surface_and_best_params_average_across_symbols() -> None:
    metrics = pl.DataFrame(
        {
            "fast": [10, 10, 20, 20],
            "slow": [100, 100, 100, 100],
            "symbol": ["A", "B", "A", "B"],
            "sharpe": [1.0, 0.0, 0.4, 0.4],
        }
    )
    surface = sweep_surface(metrics, "fast", "slow", "sharpe")
    assert surface.rows() == [("10", "100", 0.5), ("20", "100", 0.4)]
    assert best_params(metrics, ["fast", "slow"]) == {"fast": 10, "slow": 100}
    assert best_params(metrics, []) == {}


def test_payloads_are_what_the_api_accepts() -> None:
    spec = BacktestSpec.parse(
        {
            "strategy": "sma_crossover",
            "symbols": ["SPX"],
            "params": {"kind": "ema"},
            "grid": {"fast": [10, 20], "slow": [100]},
            "execution": {"fees_bps": 5},
            "regimes": {"model": "hmm"},
        }
    )
    saved = msgspec.convert(strategy_payload("spx-cross", spec), StrategyCreate)
    assert saved.name == "spx-cross"
    assert saved.spec.params == {"kind": "ema"}
    job = msgspec.convert(
        backtest_payload(spec, WalkForwardSpec(train=252, test=63)), BacktestCreate
    )
    assert job.grid == {"fast": [10, 20], "slow": [100]}
    assert job.walk_forward is not None and job.walk_forward.train == 252
    assert "grid" not in backtest_payload(
        BacktestSpec.parse({"strategy": "buy_and_hold", "symbols": ["SPX"]})
    )
