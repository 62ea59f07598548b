"""Round trips from the simulator's frame, against trades worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from engine.backtest.execution import column, simulate
from engine.backtest.spec import Execution
from engine.backtest.trades import TRADE_COLUMNS, trade_table

BARS = 120
FEE = 0.001
CASH = 1000.0
START = datetime(2021, 1, 4, tzinfo=UTC)


def _close(seed: int, bars: int = BARS) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100 * np.exp(np.cumsum(rng.normal(0.0005, 0.02, bars)))


def _held(bars: int, *spans: tuple[int, int | None, float]) -> np.ndarray:
    """Targets so that the weight `w` is held from bar `a` to bar `b` - 1 (to the end if
    b is None): a target decided at bar t's close executes at bar t + 1."""
    target = np.zeros(bars)
    for a, b, w in spans:
        target[a - 1 : (b - 1 if b is not None else bars)] = w
    return target


def _simulate(closes: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> pl.DataFrame:
    frame = pl.concat(
        pl.DataFrame(
            {
                "symbol": symbol,
                "ts": [START + timedelta(days=i) for i in range(len(close))],
                "close": close,
                "_row": np.arange(len(close), dtype=np.int32),
                "target:k": targets[symbol],
            }
        )
        for symbol, close in closes.items()
    )
    execution = Execution(fees_bps=FEE * 10_000, init_cash=CASH)
    return simulate(frame.lazy(), ["k"], execution).collect()


def test_trades_are_the_runs_of_held_weight_with_their_equity_change() -> None:
    close = _close(1)
    target = _held(BARS, (5, 20, 1.0), (30, 40, -0.5), (90, None, 1.0))
    frame = _simulate({"A": close}, {"A": target})

    trades = trade_table(frame, ["k"], init_cash=CASH)

    equity = frame[column("equity", "k")].to_numpy()
    ts = frame["ts"]
    assert trades.columns == list(TRADE_COLUMNS)
    assert trades["entry_ts"].to_list() == [ts[5], ts[30], ts[90]]
    assert trades["exit_ts"].to_list() == [ts[20], ts[40], None]
    assert trades["bars"].to_list() == [15, 10, 30]
    assert trades["direction"].to_list() == [1, -1, 1]
    assert trades["is_open"].to_list() == [False, False, True]
    before = equity[[4, 29, 89]]
    after = equity[[20, 40, BARS - 1]]
    np.testing.assert_allclose(trades["return"].to_numpy(), after / before - 1.0, rtol=1e-12)
    np.testing.assert_allclose(trades["pnl"].to_numpy(), after - before, rtol=1e-12)
    assert trades["key"].unique().to_list() == ["k"]


def test_an_all_in_long_trade_has_vectorbts_pnl_and_return_on_cost() -> None:
    close = _close(2)
    frame = _simulate({"A": close}, {"A": _held(BARS, (10, 50, 1.0))})

    (trade,) = trade_table(frame, ["k"]).iter_rows(named=True)

    # from_signals: all cash buys size = cash / (price (1 + fee)) at bar 10's close
    cash = CASH
    size = cash / (close[10] * (1 + FEE))
    pnl = size * (close[50] - close[10]) - FEE * size * close[10] - FEE * size * close[50]
    assert trade["pnl"] == pytest.approx(pnl, rel=1e-10)
    assert trade["return"] == pytest.approx(pnl / (size * close[10] * (1 + FEE)), rel=1e-10)


def test_a_flip_splits_the_order_between_the_closing_and_the_opening_trade() -> None:
    close = _close(3)
    frame = _simulate({"A": close}, {"A": _held(BARS, (10, 40, 0.8), (40, 70, -0.6))})

    trades = trade_table(frame, ["k"])

    equity = frame[column("equity", "k")].to_numpy()
    weight = frame[column("weight", "k")].to_numpy()
    # just before the flip at bar 40's close: the long has drifted with the price
    value_before = equity[39] * (1 + weight[39] * (close[40] / close[39] - 1))
    drifted = equity[39] * weight[39] * close[40] / close[39] / value_before
    between = value_before * (1 - FEE * drifted)  # the long sold, its fee paid
    assert trades["exit_ts"][0] == trades["entry_ts"][1] == frame["ts"][40]
    assert trades["direction"].to_list() == [1, -1]
    np.testing.assert_allclose(
        trades["return"].to_numpy(),
        [between / equity[9] - 1, equity[70] / between - 1],
        rtol=1e-10,
    )
    # the trades' pnl add up to the account's
    assert trades["pnl"].sum() == pytest.approx(equity[70] - equity[9], rel=1e-12)


def test_symbols_keys_and_regimes() -> None:
    closes = {"A": _close(4), "B": _close(5, 80)}
    targets = {"A": _held(BARS, (3, 8, 1.0)), "B": _held(80, (70, None, -1.0))}
    frame = _simulate(closes, targets).with_columns(
        pl.col(column(kind, "k")).alias(column(kind, "same")) for kind in ("equity", "weight")
    )
    regime = pl.when(pl.col("_row") < 5).then(None).otherwise(pl.col("_row") // 50)
    frame = frame.with_columns(regime.alias("regime"))

    trades = trade_table(frame.lazy(), ["k", "same"])

    assert trades["key"].to_list() == ["k", "k", "same", "same"]
    assert trades["symbol"].to_list() == ["A", "B", "A", "B"]
    assert trades["entry_regime"].to_list() == [None, 1, None, 1]
    assert trades["is_open"].to_list() == [False, True, False, True]
    assert trades["bars"].to_list() == [5, 10, 5, 10]
    # without fee columns the trades are the same
    assert trades.filter(key="same").drop("key").equals(trades.filter(key="k").drop("key"))


def test_no_position_no_trades() -> None:
    frame = _simulate({"A": _close(6)}, {"A": np.zeros(BARS)})

    trades = trade_table(frame, ["k"])

    assert trades.is_empty() and trades.columns == list(TRADE_COLUMNS)
    with pytest.raises(ValueError, match="at least one key"):
        trade_table(frame, [])
    with pytest.raises(ValueError, match="weight:k"):
        trade_table(frame.drop("weight:k"), ["k"])
