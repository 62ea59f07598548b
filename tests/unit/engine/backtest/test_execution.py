"""The closed-form executor against a literal share-and-cash account simulation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from engine.backtest.execution import column, simulate, simulate_portfolio
from engine.backtest.spec import Execution
from tests.unit.engine.backtest.oracle import account, portfolio_account

BARS = 500


def _path(seed: int, bars: int = BARS) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0002, 0.02, bars)))
    open_ = close * np.exp(rng.normal(0, 0.005, bars))
    return close, open_


def _steps(seed: int, values: np.ndarray, hold: int, bars: int = BARS) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.repeat(rng.choice(values, bars // hold + 1), hold)[:bars].astype(float)


def _frame(symbols: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> pl.DataFrame:
    parts = []
    for symbol, (close, open_, target) in symbols.items():
        n = len(close)
        parts.append(
            pl.DataFrame(
                {
                    "symbol": symbol,
                    "ts": [datetime(2020, 1, 1, tzinfo=UTC) + timedelta(days=i) for i in range(n)],
                    "open": open_,
                    "close": close,
                    "_row": np.arange(n, dtype=np.int32),
                    "target:k": target,
                }
            )
        )
    return pl.concat(parts)


CASES = {
    "all in, fees (from_signals)": (np.array([0.0, 1.0]), Execution(fees_bps=10, init_cash=1.0)),
    "fractional long/short, fees and slippage": (
        np.array([-1.0, -0.3, 0.0, 0.5, 1.0, 1.5]),
        Execution(fees_bps=25, slippage_bps=5, init_cash=1.0),
    ),
    "open execution": (
        np.array([-0.5, 0.0, 0.7, 1.0]),
        Execution(fees_bps=25, slippage_bps=5, price="open", init_cash=1.0),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_equity_fees_and_orders_equal_a_literal_account(case: str) -> None:
    values, execution = CASES[case]
    data = {}
    for i, symbol in enumerate(("A", "B")):
        close, open_ = _path(i, BARS - 100 * i)  # symbols of different lengths
        data[symbol] = (close, open_, _steps(10 + i, values, 9, BARS - 100 * i))
    frame = _frame(data)

    out = simulate(frame.lazy(), ["k"], execution).collect()

    for symbol, (close, open_, target) in data.items():
        mine = out.filter(pl.col("symbol") == symbol)
        equity, fees, orders = account(
            close,
            target,
            fee=execution.fee,
            slip=execution.slippage,
            open_=open_ if execution.price == "open" else None,
        )
        np.testing.assert_allclose(mine[column("equity", "k")].to_numpy(), equity, rtol=1e-12)
        assert mine[column("fees", "k")].sum() == pytest.approx(fees, rel=1e-10)
        assert mine[column("trade", "k")].sum() == orders


def test_scheduled_rebalancing_trades_back_to_target_weights() -> None:
    close, open_ = _path(3)
    target = _steps(4, np.array([0.0, 0.4, 0.8]), 30)
    frame = _frame({"A": (close, open_, target)})
    execution = Execution(fees_bps=20, rebalance="weekly", init_cash=1.0)

    out = simulate(frame.lazy(), ["k"], execution).collect()

    week = frame["ts"].dt.truncate("1w")
    scheduled = (week != week.shift(1)).fill_null(value=True).to_numpy()
    equity, _, orders = account(close, target, fee=execution.fee, rebalance=scheduled)
    np.testing.assert_allclose(out[column("equity", "k")].to_numpy(), equity, rtol=1e-12)
    assert out[column("trade", "k")].sum() == orders
    assert orders > np.count_nonzero(np.diff(target))  # rebalances between target changes


def test_held_weight_is_the_target_right_after_an_order_then_drifts() -> None:
    close = np.array([100.0, 100.0, 110.0, 121.0, 121.0])
    target = np.array([0.5, 0.5, 0.5, 0.0, 0.0])
    frame = _frame({"A": (close, close, target)})

    out = simulate(frame.lazy(), ["k"], Execution(init_cash=1.0)).collect()

    weight = out[column("weight", "k")].to_list()
    assert weight[0] == 0.0 and weight[1] == pytest.approx(0.5)
    assert weight[2] == pytest.approx(0.55 / 1.05)  # half in a +10 % asset
    assert weight[4] == 0.0
    np.testing.assert_allclose(out[column("equity", "k")].to_numpy(), [1, 1, 1.05, 1.105, 1.105])


def test_buy_and_hold_equals_the_price_ratio() -> None:
    close, open_ = _path(5)
    frame = _frame({"A": (close, open_, np.ones(BARS))})

    out = simulate(frame.lazy(), ["k"], Execution(init_cash=1.0)).collect()

    # all in at bar 1's close, held to the end
    assert out[column("equity", "k")][-1] == pytest.approx(close[-1] / close[1], rel=1e-12)


def test_a_shared_cash_portfolio_equals_a_literal_multi_asset_account() -> None:
    assets = 3
    close = np.column_stack([_path(20 + i)[0] for i in range(assets)])
    rng = np.random.default_rng(7)
    raw = np.repeat(rng.dirichlet(np.ones(assets), BARS // 20 + 1), 20, axis=0)[:BARS]
    target = np.round(raw * rng.choice([0.5, 1.0], (BARS, 1)), 3)
    data = {f"S{i}": (close[:, i], close[:, i], target[:, i]) for i in range(assets)}
    execution = Execution(fees_bps=15, slippage_bps=3, init_cash=1.0)

    book, positions = simulate_portfolio(_frame(data), "target:k", execution)

    equity, fees = portfolio_account(close, target, fee=execution.fee, slip=execution.slippage)
    np.testing.assert_allclose(book["equity"].to_numpy(), equity, rtol=1e-12)
    assert book["fees"].sum() == pytest.approx(fees, rel=1e-10)
    # right after a rebalance each position is its target weight
    rebalanced = book.with_row_index().filter(pl.col("trade") > 0)["index"].to_list()
    for bar in rebalanced[:5]:
        held = positions.filter(pl.col("ts") == book["ts"][bar]).sort("symbol")["weight"]
        np.testing.assert_allclose(held.to_numpy(), target[bar - 1], atol=1e-12)


def test_a_single_asset_portfolio_equals_the_per_symbol_account() -> None:
    close, open_ = _path(9)
    target = _steps(9, np.array([-0.5, 0.0, 1.0]), 11)
    frame = _frame({"A": (close, open_, target)})
    execution = Execution(fees_bps=10, slippage_bps=2, price="open", init_cash=1.0)

    per_symbol = simulate(frame.lazy(), ["k"], execution).collect()
    book, _ = simulate_portfolio(frame, "target:k", execution)

    np.testing.assert_allclose(
        book["equity"].to_numpy(), per_symbol[column("equity", "k")].to_numpy(), rtol=1e-12
    )


def test_a_bust_account_stays_at_zero_and_leaves_other_symbols_alone() -> None:
    spike = np.r_[np.full(20, 100.0), np.full(20, 400.0), np.full(20, 100.0)]
    calm, calm_open = _path(11, 60)
    data = {
        # 2x short through a 4x spike, then an order during the spike: the account is gone
        "A": (spike, spike, np.r_[np.full(30, -2.0), np.full(30, -1.0)]),
        "B": (calm, calm_open, np.ones(60)),
    }
    out = simulate(_frame(data).lazy(), ["k"], Execution(fees_bps=10, init_cash=1.0)).collect()

    busted = out.filter(pl.col("symbol") == "A")[column("equity", "k")]
    assert busted.is_nan().sum() == 0 and (busted[31:] == 0.0).all()
    other = out.filter(pl.col("symbol") == "B")[column("equity", "k")].to_numpy()
    equity, _, _ = account(calm, np.ones(60), fee=0.001)
    np.testing.assert_allclose(other, equity, rtol=1e-12)


def test_an_account_that_reaches_zero_between_orders_is_liquidated() -> None:
    spike = np.r_[np.full(20, 100.0), np.full(20, 400.0), np.full(20, 100.0)]
    frame = _frame({"A": (spike, spike, np.full(60, -2.0))})  # never another order

    out = simulate(frame.lazy(), ["k"], Execution(init_cash=1.0)).collect()

    equity = out[column("equity", "k")].to_numpy()
    assert (equity[:20] > 0).all()
    assert (equity[20:] == 0.0).all()  # not negative at the spike, not back after it
    assert (out[column("weight", "k")].to_numpy()[20:] == 0.0).all()
    assert out[column("trade", "k")].sum() == 1  # the entry only
