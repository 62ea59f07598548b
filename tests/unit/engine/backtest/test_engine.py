"""`run_backtest` end to end on in-memory bars: causality, benchmarks, portfolios, regimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest

from engine.backtest.engine import PORTFOLIO, run_backtest
from engine.backtest.spec import BacktestSpec
from engine.strategies.base import SpecError, strategy_names

START = datetime(2015, 1, 2, tzinfo=UTC)


def _bars(symbols: dict[str, int], seed: int = 3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for symbol, n in symbols.items():
        close = 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.013, n)))
        open_ = close * np.exp(rng.normal(0, 0.004, n))
        parts.append(
            pl.DataFrame(
                {
                    "symbol": symbol,
                    "ts": [START + timedelta(days=i) for i in range(n)],
                    "open": open_,
                    "high": np.maximum(open_, close) * 1.002,
                    "low": np.minimum(open_, close) * 0.998,
                    "close": close,
                    "volume": 1e6,
                }
            )
        )
    return pl.concat(parts).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))


def _labels(bars: pl.DataFrame, seed: int = 5) -> pl.DataFrame:
    """Sticky two-state filtered labels for every bar of every symbol."""
    rng = np.random.default_rng(seed)
    flips = pl.Series(rng.random(bars.height) < 0.03)
    regime = (flips.cum_sum() % 2).cast(pl.Int32)
    prob = pl.Series(rng.uniform(0.5, 1.0, bars.height))
    return bars.select("symbol", "ts").with_columns(
        regime.alias("regime"),
        pl.concat_list(prob, 1 - prob).alias("probs"),
    )


def _spec(**fields: Any) -> BacktestSpec:
    return BacktestSpec.parse(fields)


REGIME_SPEC: dict[str, dict[str, Any]] = {
    "regime_filter": {"params": {"base": "sma_crossover", "base_params": {"fast": 5, "slow": 20}}},
    "regime_allocation": {
        "params": {"weights": {"0": {"A": 0.7, "B": 0.3}, "1": {"B": 1.0}}},
        "portfolio": {},
        "regimes": {"model": "m", "reference": "A"},
    },
}


@pytest.mark.parametrize("name", strategy_names())
@pytest.mark.parametrize("cut", [60, 150])
def test_future_prices_never_change_positions_up_to_the_cut(name: str, cut: int) -> None:
    bars = _bars({"A": 260, "B": 230})
    labels = _labels(bars)
    fields: dict[str, Any] = {
        "strategy": name,
        "symbols": ["A", "B"],
        "execution": {"fees_bps": 10, "slippage_bps": 2},
        "sizing": {"kind": "vol_target", "vol_window": 10, "max_leverage": 2.0},
        "regimes": {"model": "m"},
    }
    spec = _spec(**(fields | REGIME_SPEC.get(name, {})))
    base = run_backtest(bars, spec, labels)
    cut_ts = START + timedelta(days=cut)
    rng = np.random.default_rng(cut)
    after = pl.col("ts") > cut_ts
    garbage = bars.with_columns(
        pl.when(after).then(pl.col(c) * rng.uniform(0.2, 5.0)).otherwise(pl.col(c))
        for c in ("open", "high", "low", "close")
    )
    scrambled_labels = labels.with_columns(
        pl.when(after).then(1 - pl.col("regime")).otherwise(pl.col("regime")).alias("regime")
    )
    moved = run_backtest(garbage, spec, scrambled_labels)

    assert base.equity is not None and moved.equity is not None
    before = [pl.col("ts") <= cut_ts]
    left = base.equity.filter(*before).select("key", "symbol", "ts", "weight", "equity")
    right = moved.equity.filter(*before).select("key", "symbol", "ts", "weight", "equity")
    assert left.height > 0
    assert left.drop("equity").equals(right.drop("equity"))  # positions: exactly
    # equity up to the cut too (to rounding: the log-equity sum runs over the whole frame)
    np.testing.assert_allclose(left["equity"].to_numpy(), right["equity"].to_numpy(), rtol=1e-12)


def test_buy_and_hold_equals_the_price_ratio_and_its_own_benchmark() -> None:
    bars = _bars({"A": 300})
    result = run_backtest(bars, _spec(strategy="buy_and_hold", symbols=["A"]))
    close = bars["close"]
    row = result.metrics.row(0, named=True)
    assert row["total_return"] == pytest.approx(close[-1] / close[1] - 1, rel=1e-12)
    assert row["benchmark_return"] == pytest.approx(close[-1] / close[0] - 1, rel=1e-12)
    assert row["orders"] == 1 and row["trades"] == 1 and row["exposure"] == pytest.approx(298 / 300)


def test_a_benchmark_symbol_gives_alpha_and_beta_against_it() -> None:
    bars = _bars({"A": 300, "IDX": 300})
    spec = _spec(strategy="buy_and_hold", symbols=["A"], benchmark="IDX")
    row = run_backtest(bars, spec).metrics.row(0, named=True)
    idx = bars.filter(pl.col("symbol") == "IDX")["close"]
    assert row["benchmark_return"] == pytest.approx(idx[-1] / idx[0] - 1, rel=1e-12)
    assert row["beta"] is not None and abs(row["beta"]) < 0.5  # independent paths


def test_a_grid_gives_one_row_per_parameter_set_and_symbol() -> None:
    bars = _bars({"A": 400, "B": 380, "C": 390})
    spec = _spec(
        strategy="sma_crossover",
        symbols=["A", "B", "C"],
        grid={"fast": [5, 10, 20], "slow": [50, 100]},
        execution={"fees_bps": 10},
    )
    result = run_backtest(bars, spec)
    assert result.metrics.height == 18
    assert result.metrics.select("fast", "slow").unique().height == 6
    # each grid cell equals the same parameters run alone
    alone = run_backtest(
        bars,
        _spec(
            strategy="sma_crossover",
            symbols=["B"],
            params={"fast": 10, "slow": 100},
            execution={"fees_bps": 10},
        ),
    ).metrics.row(0, named=True)
    cell = result.metrics.filter(fast=10, slow=100, symbol="B").row(0, named=True)
    for name in ("total_return", "sharpe", "max_drawdown", "trades", "total_fees"):
        assert cell[name] == pytest.approx(alone[name], rel=1e-12)


def test_regime_allocation_trades_one_shared_cash_portfolio() -> None:
    bars = _bars({"A": 300, "B": 300})
    labels = _labels(bars)
    spec = _spec(
        strategy="regime_allocation", symbols=["A", "B"], **REGIME_SPEC["regime_allocation"]
    )
    result = run_backtest(bars, spec, labels)
    assert result.metrics["symbol"].to_list() == [PORTFOLIO]
    assert result.regime_metrics is not None
    assert set(result.regime_metrics["regime"].drop_nulls().to_list()) == {0, 1}
    assert result.equity is not None
    assert result.equity["equity"][0] == spec.execution.init_cash


def test_portfolio_weights_are_capped() -> None:
    bars = _bars({"A": 200, "B": 200})
    spec = _spec(strategy="buy_and_hold", symbols=["A", "B"], portfolio={"weight_cap": 0.3})
    result = run_backtest(bars, spec)
    assert result.equity is not None
    # buy and hold: 30 % in each of 2 symbols from bar 1, then drifting with prices
    assert result.metrics["exposure"][0] > 0.9
    weights = result.equity["weight"]
    assert weights[1] == pytest.approx(0.6) and weights.max() < 0.75


def test_missing_bars_are_a_clear_error() -> None:
    with pytest.raises(SpecError, match="no bars in range for: B"):
        run_backtest(_bars({"A": 50}), _spec(strategy="buy_and_hold", symbols=["A", "B"]))


def test_a_regime_spec_without_labels_is_a_clear_error() -> None:
    spec = _spec(strategy="buy_and_hold", symbols=["A"], regimes={"model": "hmm"})
    with pytest.raises(SpecError, match="no regime labels for model 'hmm'"):
        run_backtest(_bars({"A": 50}), spec)


def _numpy_sma_crossover(close: np.ndarray, fast: int, slow: int, fee: float) -> np.ndarray:
    """Long/flat SMA crossover in a plain loop: signal at t's close, all-in order at t+1's
    close with vectorbt's fee convention. Returns equity (starting at 1)."""
    sums = np.r_[0.0, np.cumsum(close)]
    cash, shares = 1.0, 0.0
    equity = np.empty(len(close))
    signal = np.zeros(len(close))
    for t in range(len(close)):
        if t >= slow - 1:
            fast_ma = (sums[t + 1] - sums[t + 1 - fast]) / fast
            slow_ma = (sums[t + 1] - sums[t + 1 - slow]) / slow
            signal[t] = 1.0 if fast_ma > slow_ma else 0.0
        want = signal[t - 1] if t > 0 else 0.0
        if want == 1.0 and shares == 0.0:
            shares, cash = cash / (close[t] * (1 + fee)), 0.0
        elif want == 0.0 and shares > 0.0:
            shares, cash = 0.0, shares * close[t] * (1 - fee)
        equity[t] = cash + shares * close[t]
    return equity


@pytest.mark.parametrize("keep_equity", [True, False], ids=["reference", "fast"])
def test_sma_crossover_equals_a_plain_numpy_loop(keep_equity: bool) -> None:
    bars = _bars({"A": 1500, "B": 1200}, seed=8)
    spec = _spec(
        strategy="sma_crossover",
        symbols=["A", "B"],
        grid={"fast": [10, 30], "slow": [100]},
        execution={"fees_bps": 10, "init_cash": 1.0},
    )
    result = run_backtest(bars, spec, keep_equity=keep_equity, keep_trades=keep_equity)
    for row in result.metrics.iter_rows(named=True):
        close = bars.filter(pl.col("symbol") == row["symbol"])["close"].to_numpy()
        equity = _numpy_sma_crossover(close, row["fast"], 100, 0.001)
        drawdown = np.min(equity / np.maximum(np.maximum.accumulate(equity), 1.0) - 1)
        assert row["total_return"] == pytest.approx(equity[-1] - 1, rel=1e-9, abs=1e-9)
        assert row["max_drawdown"] == pytest.approx(drawdown, rel=1e-9, abs=1e-9)
