"""A user's strategy is one small module named in REGIMELAB_STRATEGY_MODULES."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import engine.strategies.base as base
from engine.backtest.engine import run_backtest
from engine.backtest.spec import BacktestSpec
from engine.errors import ConfigError
from engine.settings import get_settings

MODULE = """
from __future__ import annotations

import polars as pl

from engine.strategies.base import Bars, StrategyParams, require, strategy


class Params(StrategyParams, frozen=True, forbid_unknown_fields=True):
    days: int = 3

    def __post_init__(self) -> None:
        require(self.days >= 1, "days must be >= 1")


@strategy("after_down_days", Params, "Long after `days` down closes in a row.")
def after_down_days(p: Params, bars: Bars) -> pl.Expr:
    down = (pl.col("close").diff() < 0).cast(pl.Int32)
    streak = bars.over(down.rolling_sum(p.days))
    return pl.when(streak == p.days).then(1.0).otherwise(0.0)
"""


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    (tmp_path / "my_user_strategies.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("REGIMELAB_STRATEGY_MODULES", "my_user_strategies")
    monkeypatch.setattr(base, "_loaded", False)
    get_settings.cache_clear()
    yield "after_down_days"
    get_settings.cache_clear()
    base._REGISTRY.pop("after_down_days", None)
    sys.modules.pop("my_user_strategies", None)
    base._loaded = False


def test_a_user_module_registers_and_backtests(user_module: str) -> None:
    assert user_module in base.strategy_names()
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 300)))
    bars = pl.DataFrame(
        {
            "symbol": "X",
            "ts": [datetime(2020, 1, 1, tzinfo=UTC) + timedelta(days=i) for i in range(300)],
            "open": close,
            "high": close,
            "low": close,
            "close": close,
            "volume": 1.0,
        }
    )
    spec = BacktestSpec.parse({"strategy": user_module, "symbols": ["X"], "grid": {"days": [2, 3]}})

    result = run_backtest(bars, spec)

    assert result.metrics.height == 2
    assert (result.metrics["exposure"] > 0).all()
    with pytest.raises(base.SpecError, match="days must be >= 1"):
        BacktestSpec.parse({"strategy": user_module, "symbols": ["X"], "params": {"days": 0}})


def test_an_unimportable_module_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGIMELAB_STRATEGY_MODULES", "no_such_module_here")
    monkeypatch.setattr(base, "_loaded", False)
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError, match="cannot import 'no_such_module_here'"):
            base.get_strategy("sma_crossover")
    finally:
        get_settings.cache_clear()
