"""RegimeLab's backtests equal vectorbt's `Portfolio.from_signals` on the same signals.

SMA crossover, long/flat and all in, 10 bps fees, each symbol its own account, on a few
synthetic GBM symbols: total return, max drawdown, order count and the equity curve of
every (parameter set, symbol) against vectorbt 1.2, the optional `bench` dependency
group (skipped without it). RegimeLab fills a target decided at bar t's close at bar
t+1's close, so vectorbt gets the crossover signals one bar later.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest

from engine.backtest.engine import BacktestResult, run_backtest
from engine.backtest.spec import BacktestSpec, Execution

vbt = pytest.importorskip("vectorbt")
pd = pytest.importorskip("pandas")

SYMBOLS = ("AAA", "BBB", "CCC")
DAYS = 1000
FAST, SLOW = (10, 20), (50, 100)
FEES_BPS = 10.0
INIT_CASH = 100_000.0
PAIRS = list(itertools.product(FAST, SLOW))


@pytest.fixture(scope="module")
def closes() -> np.ndarray:
    """(symbol, day) GBM closes from 100."""
    rng = np.random.default_rng(20260101)
    log_returns = rng.normal(0.0003, 0.015, (len(SYMBOLS), DAYS))
    log_returns[:, 0] = 0.0
    return 100.0 * np.exp(np.cumsum(log_returns, axis=1))


@pytest.fixture(scope="module")
def ours(closes: np.ndarray) -> BacktestResult:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    ts = [start + timedelta(days=i) for i in range(DAYS)]
    bars = pl.concat(
        pl.DataFrame(
            {
                "symbol": symbol,
                "ts": ts,
                "open": close,
                "high": close,
                "low": close,
                "close": close,
                "volume": 1e6,
            }
        )
        for symbol, close in zip(SYMBOLS, closes, strict=True)
    )
    spec = BacktestSpec(
        strategy="sma_crossover",
        symbols=SYMBOLS,
        grid={"fast": FAST, "slow": SLOW},
        execution=Execution(fees_bps=FEES_BPS, init_cash=INIT_CASH),
    )
    return run_backtest(bars, spec, keep_equity=True, keep_trades=False)


@pytest.fixture(scope="module")
def theirs(closes: np.ndarray) -> dict[tuple[int, int], Any]:
    """vectorbt portfolios (one column per symbol) per (fast, slow)."""
    close = pd.DataFrame(closes.T, columns=list(SYMBOLS))
    portfolios = {}
    for fast, slow in PAIRS:
        # pandas' rolling means (vbt.MA.run would only add numba compile time)
        fast_ma, slow_ma = close.rolling(fast).mean(), close.rolling(slow).mean()
        above = fast_ma.to_numpy() > slow_ma.to_numpy()  # False during the warm-up (NaN)
        was_above = np.vstack([np.zeros_like(above[:1]), above[:-1]])
        entries, exits = np.zeros_like(above), np.zeros_like(above)
        entries[1:] = (above & ~was_above)[:-1]  # one bar later: filled at the next close
        exits[1:] = (~above & was_above)[:-1]
        portfolios[fast, slow] = vbt.Portfolio.from_signals(
            close,
            pd.DataFrame(entries, columns=close.columns),
            pd.DataFrame(exits, columns=close.columns),
            fees=FEES_BPS / 10_000,
            init_cash=INIT_CASH,
            freq="1D",
        )
    return portfolios


def _metric(result: BacktestResult, fast: int, slow: int, name: str) -> np.ndarray:
    rows = result.metrics.filter(pl.col("fast") == fast, pl.col("slow") == slow)
    return rows.sort("symbol")[name].to_numpy()


@pytest.mark.parametrize(("fast", "slow"), PAIRS)
def test_total_return_and_max_drawdown_equal_vectorbt(
    ours: BacktestResult, theirs: dict[tuple[int, int], Any], fast: int, slow: int
) -> None:
    portfolio = theirs[fast, slow]
    np.testing.assert_allclose(
        _metric(ours, fast, slow, "total_return"), portfolio.total_return().to_numpy(), atol=1e-6
    )
    np.testing.assert_allclose(
        _metric(ours, fast, slow, "max_drawdown"), portfolio.max_drawdown().to_numpy(), atol=1e-6
    )
    orders = portfolio.orders.count().to_numpy()
    assert (orders > 2).all()  # the crossover trades on every symbol
    np.testing.assert_array_equal(_metric(ours, fast, slow, "orders"), orders)


@pytest.mark.parametrize(("fast", "slow"), PAIRS)
def test_equity_curves_equal_vectorbt(
    ours: BacktestResult, theirs: dict[tuple[int, int], Any], fast: int, slow: int
) -> None:
    assert ours.equity is not None
    key = ours.metrics.filter(pl.col("fast") == fast, pl.col("slow") == slow)["key"][0]
    value = theirs[fast, slow].value()
    for symbol in SYMBOLS:
        curve = ours.equity.filter(pl.col("key") == key, pl.col("symbol") == symbol).sort("ts")
        np.testing.assert_allclose(
            curve["equity"].to_numpy(), value[symbol].to_numpy(), rtol=1e-9, atol=0.0
        )
